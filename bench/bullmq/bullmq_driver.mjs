// The BullMQ side of the orchcore vs BullMQ benchmark (bench/bullmq/run.py
// starts it; orchcore_driver.cpp is the orchcore side, with the same modes,
// arguments and JSON output). BullMQ as an application uses it: a Queue for
// producers (addBulk / add), a Worker of N concurrency, QueueEvents to wait
// for a job's result. Jobs are kept (removeOnComplete / removeOnFail false).
//
//   produce --n N [--chunk C]   Queue.addBulk of N no-op jobs in chunks; prints the rate
//   bulk    --n N [--chunk C]   the same (the bulk-enqueue row; default N = 100,000)
//   work    --slots S --n N     one Worker of concurrency S; runs until it has completed N
//                               jobs (N = 0: until nothing completed for --idle-ms after the
//                               first); prints a "ready" line once connected, then the time
//                               from its first job started to its last completed, and its
//                               CPU time (process.cpuUsage) over that run
//   latency --n N [--warmup W]  Queue.add then job.waitUntilFinished(queueEvents), N + W
//                               times in sequence; p50/p99 of the last N
//
// Common: --url redis://127.0.0.1:PORT/0 --queue NAME --timeout-s S.
import { Queue, Worker, QueueEvents } from 'bullmq';

function usage(why) {
  process.stderr.write(`bullmq_driver: ${why}\nusage: node bullmq_driver.mjs produce|bulk|work|latency ` +
    '[--url URL] [--queue NAME] [--n N] [--slots S] [--chunk C] [--warmup W] [--idle-ms MS] [--timeout-s S]\n');
  process.exit(2);
}

function parse(argv) {
  const a = { mode: argv[0], url: 'redis://127.0.0.1:6379/0', queue: 'bench', n: 0, slots: 16, chunk: 1000,
    warmup: 20, idleMs: 2000, timeoutS: 300 };
  if (!a.mode) usage('no mode given');
  const numeric = { '--n': ['n', true], '--slots': ['slots', false], '--chunk': ['chunk', false],
    '--warmup': ['warmup', true], '--idle-ms': ['idleMs', false], '--timeout-s': ['timeoutS', false] };
  for (let i = 1; i < argv.length; i += 2) {
    const f = argv[i];
    const v = argv[i + 1];
    if (v === undefined) usage(`${f} needs a value`);
    if (f === '--url') a.url = v;
    else if (f === '--queue') a.queue = v;
    else if (numeric[f]) {
      const [key, zeroOk] = numeric[f];
      if (!/^[0-9]+$/.test(v) || (!zeroOk && Number(v) === 0)) usage(`${f} needs a ${zeroOk ? 'non-negative' : 'positive'} integer, got '${v}'`);
      a[key] = Number(v);
    } else usage(`unknown option ${f}`);
  }
  if (a.n === 0 && a.mode !== 'work') a.n = a.mode === 'bulk' ? 100000 : a.mode === 'latency' ? 500 : 20000;
  return a;
}

function connectionOf(url) {
  const u = new URL(url);
  const db = u.pathname.length > 1 ? Number(u.pathname.slice(1)) : 0;
  return { host: u.hostname, port: Number(u.port || 6379), db, maxRetriesPerRequest: null };
}

// The same small payload as the orchcore side's task payload.
const payload = (i) => ({ i, s: '0123456789abcdef' });
const nowMs = () => performance.now();
const unixNow = () => (performance.timeOrigin + performance.now()) / 1000;
const cpuSeconds = (u) => (u.user + u.system) / 1e6;
const print = (o) => process.stdout.write(JSON.stringify({ impl: 'bullmq', ...o }) + '\n');

function newQueue(a) {
  return new Queue(a.queue, { connection: connectionOf(a.url),
    defaultJobOptions: { removeOnComplete: false, removeOnFail: false } });
}

async function produce(a) {
  const cpu0 = process.cpuUsage();
  const queue = newQueue(a);
  await queue.waitUntilReady();
  const t0 = nowMs();
  for (let i = 0; i < a.n; i += a.chunk) {
    const jobs = [];
    for (let k = i; k < Math.min(a.n, i + a.chunk); ++k) jobs.push({ name: 'noop', data: payload(k) });
    await queue.addBulk(jobs);
  }
  const s = (nowMs() - t0) / 1000;
  await queue.close();
  print({ mode: a.mode, n: a.n, seconds: s, rate: a.n / s, cpu_s: cpuSeconds(process.cpuUsage(cpu0)) });
}

async function work(a) {
  const cpu0 = process.cpuUsage();
  let first = null;
  let firstUnix = 0;
  let completed = 0;
  let last = nowMs();
  const worker = new Worker(a.queue, async () => {
    if (first === null) {
      first = nowMs();
      firstUnix = unixNow();
    }
    return null;
  }, { connection: connectionOf(a.url), concurrency: a.slots });
  worker.on('failed', (job, err) => { throw new Error(`job ${job && job.id} failed: ${err && err.message}`); });
  worker.on('error', (err) => { throw err; });
  await worker.waitUntilReady();
  print({ mode: 'work', ready: true });
  const end = await new Promise((resolve, reject) => {
    const giveUp = setTimeout(() => reject(new Error(`work: timed out after ${a.timeoutS} s with ${completed} jobs completed`)),
      a.timeoutS * 1000);
    const finish = (t) => { clearTimeout(giveUp); clearInterval(idle); resolve(t); };
    const idle = setInterval(() => {
      if (a.n === 0 && first !== null && nowMs() - last > a.idleMs) finish(last);
    }, 10);
    worker.on('completed', () => {
      ++completed;
      last = nowMs();
      if (a.n > 0 && completed >= a.n) finish(last);
    });
  });
  const cpu = cpuSeconds(process.cpuUsage(cpu0));
  const endUnix = unixNow() - (nowMs() - end) / 1000;
  await worker.close();
  const s = (end - first) / 1000;
  print({ mode: 'work', slots: a.slots, completed, seconds: s, rate: completed / s,
    first_start_unix: firstUnix, last_done_unix: endUnix, cpu_s: cpu });
}

function percentile(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.round(p * (sorted.length - 1)))];
}

async function latency(a) {
  const queue = newQueue(a);
  const events = new QueueEvents(a.queue, { connection: connectionOf(a.url) });
  await Promise.all([queue.waitUntilReady(), events.waitUntilReady()]);
  const ms = [];
  for (let i = 0; i < a.warmup + a.n; ++i) {
    const t0 = nowMs();
    const job = await queue.add('noop', payload(i));
    await job.waitUntilFinished(events, a.timeoutS * 1000);
    if (i >= a.warmup) ms.push(nowMs() - t0);
  }
  await Promise.all([queue.close(), events.close()]);
  const sorted = [...ms].sort((x, y) => x - y);
  const mean = ms.reduce((x, y) => x + y, 0) / ms.length;
  print({ mode: 'latency', n: ms.length, p50_ms: percentile(sorted, 0.5), p99_ms: percentile(sorted, 0.99),
    mean_ms: mean, max_ms: sorted[sorted.length - 1] });
}

const a = parse(process.argv.slice(2));
const modes = { produce, bulk: produce, work, latency };
if (!modes[a.mode]) usage(`unknown mode ${a.mode}`);
process.on('uncaughtException', (e) => {
  process.stderr.write(`bullmq_driver ${a.mode}: ${e && e.stack ? e.stack : e}\n`);
  process.exit(1);
});
modes[a.mode](a).then(() => process.exit(0), (e) => {
  process.stderr.write(`bullmq_driver ${a.mode}: ${e && e.stack ? e.stack : e}\n`);
  process.exit(1);
});
