#!/usr/bin/env python3
"""orchcore vs BullMQ 5 on one private redis-server, side by side.

From a fresh clone: `npm ci` of the pinned bullmq (bench/bullmq/package-lock.json),
builds the Release orchcore driver (preset `release`, target
orchcore_bullmq_driver), starts one redis-server on a free 127.0.0.1
port in a temporary directory (no persistence; stopped by its pid at the end,
whatever happens), then runs every workload with orchcore and BullMQ
interleaved (orchcore, BullMQ, orchcore, BullMQ, ...; FLUSHALL and CONFIG
RESETSTAT before each run), and prints the medians as a table. Every run is
also written as one JSON line (--json, default build/bench-bullmq/results.jsonl).

Workloads (N jobs, S slots; see bench/bullmq/README.md):
  W1   one worker process of S slots, N jobs enqueued first by a producer process
  W1c  the same with the producer running concurrently
  W2   one worker process of 1 slot, N jobs enqueued first
  W3   submit-to-result latency of single jobs, one at a time (worker idle between)
  W4   from the W1 runs: Redis memory per kept job, commands and scripts per job,
       Redis CPU and client CPU per 1000 jobs
  W5   producer + two worker processes of S slots: jobs/s and scaling vs W1c
  W6   bulk enqueue (submit_many / addBulk) of --bulk-jobs jobs

Usage: bench/bullmq/run.py [--quick] [--jobs N] [--runs R] [--slots S]
       [--latency-jobs L] [--bulk-jobs B] [--only W1,W3,...] [--timeout-s T]
       [--json FILE] [--build-dir DIR] [--no-build] [--no-npm]
"""
import argparse
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
IMPLS = ("orchcore", "bullmq")
WORKLOADS = ("W1", "W1c", "W2", "W3", "W5", "W6")


class BenchError(Exception):
    pass


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# --- a minimal RESP client (the runner's own INFO / FLUSHALL / CONFIG calls) ---

class Redis:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.buf = b""

    def close(self):
        self.sock.close()

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise BenchError("redis connection closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n):
        while len(self.buf) < n + 2:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise BenchError("redis connection closed")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def _reply(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise BenchError("redis error: " + rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self._exact(n).decode()
        if kind == b"*":
            return [self._reply() for _ in range(int(rest))]
        raise BenchError("unexpected redis reply: %r" % line)

    def call(self, *args):
        out = b"*%d\r\n" % len(args)
        for a in args:
            a = str(a).encode()
            out += b"$%d\r\n%s\r\n" % (len(a), a)
        self.sock.sendall(out)
        return self._reply()

    def info(self, section):
        fields = {}
        for line in self.call("INFO", section).splitlines():
            if line and not line.startswith("#") and ":" in line:
                k, v = line.split(":", 1)
                fields[k] = v
        return fields


# --- the private redis-server ---

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """redis-server on a free loopback port in a temp dir; stop() kills it by pid."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="orchcore-bench-bullmq-")
        self.proc = None
        exe = shutil.which("redis-server")
        if not exe:
            raise BenchError("redis-server not found (Debian: apt-get install redis-server)")
        for _ in range(5):
            self.port = free_port()
            logf = open(os.path.join(self.dir, "redis.log"), "ab")
            self.proc = subprocess.Popen(
                [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dir, "--save", "",
                 "--appendonly", "no", "--daemonize", "no", "--protected-mode", "no"],
                stdout=logf, stderr=subprocess.STDOUT)
            logf.close()
            if self._ready():
                return
            self.stop()
        raise BenchError("redis-server did not start (log in %s)" % self.dir)

    def _ready(self):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                r = Redis(self.port)
                ok = r.call("PING") == "PONG"
                r.close()
                if ok:
                    return True
            except (OSError, BenchError):
                time.sleep(0.05)
        return False

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


# --- driver processes ---

class Proc:
    """One driver process. stdout and stderr go to files (no pipe can fill up);
    every wait is bounded by the process's deadline."""

    def __init__(self, name, argv, workdir, timeout_s, live):
        self.name = name
        self.out = os.path.join(workdir, name + ".out")
        self.err = os.path.join(workdir, name + ".err")
        self.deadline = time.monotonic() + timeout_s
        self.timeout_s = timeout_s
        with open(self.out, "wb") as out, open(self.err, "wb") as err:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=err, cwd=HERE)
        self.argv = argv
        live.append(self)

    def lines(self):
        with open(self.out, "r", errors="replace") as f:
            return [json.loads(l) for l in f.read().splitlines() if l.startswith("{")]

    def fail(self, why):
        self.kill()
        with open(self.err, "r", errors="replace") as f:
            tail = f.read()[-2000:]
        raise BenchError("%s %s\n  command: %s\n  stderr: %s" % (self.name, why, " ".join(self.argv),
                                                                 tail.strip() or "(empty)"))

    def wait_ready(self):
        while not any(l.get("ready") for l in self.lines()):
            if self.proc.poll() is not None:
                self.fail("exited with code %d before it was ready" % self.proc.returncode)
            if time.monotonic() > self.deadline:
                self.fail("was not ready within %d s" % self.timeout_s)
            time.sleep(0.005)

    def wait(self):
        try:
            rc = self.proc.wait(timeout=max(0.1, self.deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.fail("did not finish within %d s" % self.timeout_s)
        if rc != 0:
            self.fail("failed with exit code %d" % rc)
        results = [l for l in self.lines() if not l.get("ready")]
        if not results:
            self.fail("printed no result")
        return results[-1]

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class Bench:
    def __init__(self, args, server, orchcore_bin, workdir):
        self.a = args
        self.server = server
        self.admin = Redis(server.port)
        self.url = "redis://127.0.0.1:%d/0" % server.port
        self.bin = orchcore_bin
        self.workdir = workdir
        self.live = []
        self.seq = 0

    def start(self, impl, mode, **opts):
        base = [self.bin] if impl == "orchcore" else ["node", os.path.join(HERE, "bullmq_driver.mjs")]
        argv = base + [mode, "--url", self.url, "--queue", "bench", "--timeout-s", str(self.a.timeout_s)]
        for k, v in opts.items():
            argv += ["--" + k.replace("_", "-"), str(v)]
        self.seq += 1
        return Proc("%03d-%s-%s" % (self.seq, impl, mode), argv, self.workdir, self.a.timeout_s + 30, self.live)

    def kill_all(self):
        for p in self.live:
            p.kill()

    def server_snapshot(self):
        mem = self.admin.info("memory")
        cpu = self.admin.info("cpu")
        stats = self.admin.info("stats")
        # The script cache is left out: FLUSHALL keeps it, so only a
        # side's first run would pay for its scripts.
        return {"used_memory": int(mem["used_memory"]) - int(mem.get("used_memory_scripts", 0)),
                "cpu_s": float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"]),
                "net_bytes": int(stats["total_net_input_bytes"]) + int(stats["total_net_output_bytes"])}

    def command_counts(self):
        """Calls per command since CONFIG RESETSTAT, without the runner's own."""
        calls = {}
        for k, v in self.admin.info("commandstats").items():
            name = k[len("cmdstat_"):]
            if name in ("info", "flushall", "dbsize") or name.startswith("config"):
                continue
            calls[name] = int(v.split(",")[0].split("=")[1])
        return calls


# --- workloads: each returns the metrics of one run ---

def expect_completed(r, n, what):
    if r["completed"] != n:
        raise BenchError("%s: the worker completed %d jobs, expected %d" % (what, r["completed"], n))


def per_1000(cpu_s, n):
    return cpu_s * 1e6 / n  # ms of CPU per 1000 jobs


def w1_pre_enqueued(b, impl, slots):
    n = b.a.jobs
    prod = b.start(impl, "produce", n=n).wait()
    w = b.start(impl, "work", slots=slots, n=n).wait()
    expect_completed(w, n, "W1/W2")
    return {"rate": w["rate"], "enqueue_rate": prod["rate"],
            "worker_cpu_ms_per_1000": per_1000(w["cpu_s"], n),
            "producer_cpu_ms_per_1000": per_1000(prod["cpu_s"], n)}


def w1_concurrent(b, impl):
    n = b.a.jobs
    w = b.start(impl, "work", slots=b.a.slots, n=n)
    w.wait_ready()
    b.start(impl, "produce", n=n).wait()
    r = w.wait()
    expect_completed(r, n, "W1c")
    return {"rate": r["rate"]}


def w3_latency(b, impl):
    warmup = 20
    w = b.start(impl, "work", slots=b.a.slots, n=b.a.latency_jobs + warmup)
    w.wait_ready()
    lat = b.start(impl, "latency", n=b.a.latency_jobs, warmup=warmup).wait()
    w.wait()
    return {"p50_ms": lat["p50_ms"], "p99_ms": lat["p99_ms"], "mean_ms": lat["mean_ms"]}


def w5_two_workers(b, impl):
    n = b.a.jobs
    workers = [b.start(impl, "work", slots=b.a.slots, n=0, idle_ms=2000) for _ in range(2)]
    for w in workers:
        w.wait_ready()
    b.start(impl, "produce", n=n).wait()
    rs = [w.wait() for w in workers]
    done = sum(r["completed"] for r in rs)
    if done != n:
        raise BenchError("W5: the two workers completed %d jobs, expected %d" % (done, n))
    span = max(r["last_done_unix"] for r in rs) - min(r["first_start_unix"] for r in rs)
    return {"rate": n / span, "split": "/".join(str(r["completed"]) for r in rs)}


def w6_bulk(b, impl):
    r = b.start(impl, "bulk", n=b.a.bulk_jobs).wait()
    return {"rate": r["rate"]}


def run_one(b, workload, impl):
    """FLUSHALL, CONFIG RESETSTAT, the workload, and the server's deltas."""
    b.admin.call("FLUSHALL")
    b.admin.call("CONFIG", "RESETSTAT")
    before = b.server_snapshot()
    if workload == "W1":
        m = w1_pre_enqueued(b, impl, b.a.slots)
    elif workload == "W2":
        m = w1_pre_enqueued(b, impl, 1)
    elif workload == "W1c":
        m = w1_concurrent(b, impl)
    elif workload == "W3":
        m = w3_latency(b, impl)
    elif workload == "W5":
        m = w5_two_workers(b, impl)
    else:
        m = w6_bulk(b, impl)
    after = b.server_snapshot()
    if workload == "W1":  # W4: what the W1 run cost the server
        n = b.a.jobs
        calls = b.command_counts()
        scripts = sum(v for k, v in calls.items() if k in ("eval", "evalsha", "eval_ro", "evalsha_ro", "fcall"))
        m.update({"memory_bytes_per_job": (after["used_memory"] - before["used_memory"]) / n,
                  "keys_per_job": b.admin.call("DBSIZE") / n,
                  "commands_per_job": sum(calls.values()) / n,
                  "scripts_per_job": scripts / n,
                  "net_bytes_per_job": (after["net_bytes"] - before["net_bytes"]) / n,
                  "redis_cpu_ms_per_1000": per_1000(after["cpu_s"] - before["cpu_s"], n),
                  "top_commands": dict(sorted(calls.items(), key=lambda kv: -kv[1])[:8])})
    return m


# --- setup: npm ci, the Release build, versions ---

def sh(argv, cwd=ROOT, timeout=1800):
    log("+ " + " ".join(argv))
    try:
        subprocess.run(argv, cwd=cwd, check=True, timeout=timeout, stdout=sys.stderr)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, FileNotFoundError) as e:
        raise BenchError("%s: %s" % (" ".join(argv), e))


def output(argv):
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "?"


def pinned_bullmq():
    with open(os.path.join(HERE, "package-lock.json")) as f:
        return json.load(f)["packages"]["node_modules/bullmq"]["version"]


def installed_bullmq():
    try:
        with open(os.path.join(HERE, "node_modules", "bullmq", "package.json")) as f:
            return json.load(f)["version"]
    except OSError:
        return None


def prepare(a):
    for tool in ("node", "npm", "redis-server", "cmake"):
        if not shutil.which(tool):
            raise BenchError("%s not found: this benchmark needs Node.js (>= 18) with npm, redis-server and "
                             "cmake (Debian: apt-get install nodejs npm redis-server cmake)" % tool)
    if not a.no_npm and installed_bullmq() != pinned_bullmq():
        sh(["npm", "ci", "--no-audit", "--no-fund"], cwd=HERE, timeout=600)
    if installed_bullmq() is None:
        raise BenchError("bullmq is not installed in %s/node_modules (run npm ci there)" % HERE)
    build_dir = a.build_dir or os.path.join(ROOT, "build", "release")
    if not a.no_build:
        if a.build_dir:
            sh(["cmake", "--build", build_dir, "--target", "orchcore_bullmq_driver"])
        else:
            sh(["cmake", "--preset", "release"])
            sh(["cmake", "--build", "--preset", "release", "--target", "orchcore_bullmq_driver"])
    exe = os.path.join(build_dir, "bench", "orchcore_bullmq_driver")
    if not os.access(exe, os.X_OK):
        raise BenchError("%s not found (build it: cmake --preset release && cmake --build --preset release "
                         "--target orchcore_bullmq_driver)" % exe)
    return exe, build_dir


def cmake_compiler(build_dir):
    try:
        with open(os.path.join(build_dir, "CMakeCache.txt")) as f:
            for line in f:
                if line.startswith("CMAKE_CXX_COMPILER:"):
                    return line.split("=", 1)[1].strip()
    except OSError:
        pass
    return "c++"


def environment(build_dir):
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            model = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "?")
    except OSError:
        pass
    return {"machine": "%s, %d CPUs, %s %s" % (model, os.cpu_count() or 0, platform.system(), platform.release()),
            "redis_server": output(["redis-server", "--version"]).split(" sha=")[0],
            "node": output(["node", "--version"]),
            "bullmq": installed_bullmq(),
            "cxx": output([cmake_compiler(build_dir), "--version"]).splitlines()[0],
            "orchcore_commit": output(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"])}


# --- the table ---

# (label, workload, metric, higher is better)
ROWS = [
    ("W1  jobs/s, 1 worker x {S}, enqueued first", "W1", "rate", True),
    ("W1c jobs/s, the same, producer concurrent", "W1c", "rate", True),
    ("W2  jobs/s, 1 worker x 1 slot", "W2", "rate", True),
    ("W3  latency p50 ms, one job at a time", "W3", "p50_ms", False),
    ("W3  latency p99 ms", "W3", "p99_ms", False),
    ("W4  Redis memory bytes per kept job", "W1", "memory_bytes_per_job", False),
    ("W4  Redis keys per kept job", "W1", "keys_per_job", False),
    ("W4  Redis commands per job (incl. in scripts)", "W1", "commands_per_job", False),
    ("W4  Redis scripts per job", "W1", "scripts_per_job", False),
    ("W4  Redis network bytes per job", "W1", "net_bytes_per_job", False),
    ("W4  Redis CPU ms per 1000 jobs", "W1", "redis_cpu_ms_per_1000", False),
    ("W4  worker CPU ms per 1000 jobs", "W1", "worker_cpu_ms_per_1000", False),
    ("W4  producer CPU ms per 1000 jobs", "W1", "producer_cpu_ms_per_1000", False),
    ("W1  enqueue jobs/s of the W1 producer", "W1", "enqueue_rate", True),
    ("W5  jobs/s, producer + 2 workers x {S}", "W5", "rate", True),
    ("W5  scaling, W5 / W1c jobs/s", "W5", "scaling", True),
    ("W6  bulk enqueue jobs/s ({B} jobs)", "W6", "rate", True),
]


def medians(results):
    out = {}
    for (wl, impl), runs in results.items():
        keys = [k for k, v in runs[0].items() if isinstance(v, (int, float))]
        out[(wl, impl)] = {k: statistics.median(r[k] for r in runs) for k in keys}
    for impl in IMPLS:  # the scaling of two worker processes over one
        base = out.get(("W1c", impl)) or out.get(("W1", impl))
        if ("W5", impl) in out and base:
            out[("W5", impl)]["scaling"] = out[("W5", impl)]["rate"] / base["rate"]
    return out


def fmt(v):
    if v is None:
        return "-"
    return "{:,.0f}".format(v) if abs(v) >= 100 else "{:.2f}".format(v)


def table(a, med):
    lines = ["%-48s %12s %12s %9s  %s" % ("row", "orchcore", "BullMQ", "x", "x is")]
    for label, wl, metric, higher in ROWS:
        o = med.get((wl, "orchcore"), {}).get(metric)
        b = med.get((wl, "bullmq"), {}).get(metric)
        if o is None and b is None:
            continue
        ratio = None
        if o and b:
            ratio = o / b if higher else b / o
        how = "orchcore/BullMQ" if higher else "BullMQ/orchcore"
        lines.append("%-48s %12s %12s %9s  %s" % (label.format(S=a.slots, B=a.bulk_jobs), fmt(o), fmt(b),
                                                  fmt(ratio), how))
    lines.append("x > 1: orchcore better (faster, or less latency / memory / work per job)")
    return "\n".join(lines)


# --- main ---

def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\nUsage:")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="2,000 jobs, 1 run, 100 latency jobs, 10,000 bulk")
    p.add_argument("--jobs", type=int, help="jobs per throughput run (default 20,000)")
    p.add_argument("--runs", type=int, help="runs per workload and side; the table shows medians (default 3)")
    p.add_argument("--slots", type=int, default=16, help="slots (concurrency) of a worker process (default 16)")
    p.add_argument("--latency-jobs", type=int, help="jobs measured in W3 (default 500)")
    p.add_argument("--bulk-jobs", type=int, help="jobs enqueued in W6 (default 100,000)")
    p.add_argument("--only", default=",".join(WORKLOADS), help="workloads to run (W4 comes with W1)")
    p.add_argument("--timeout-s", type=int, default=600, help="limit for every driver process (default 600)")
    p.add_argument("--json", help="JSON lines output (default build/bench-bullmq/results.jsonl)")
    p.add_argument("--build-dir", help="a configured build directory to build the driver in (default: preset release)")
    p.add_argument("--no-build", action="store_true", help="use the driver already built")
    p.add_argument("--no-npm", action="store_true", help="do not run npm ci")
    a = p.parse_args()
    quick = a.quick
    a.jobs = a.jobs or (2000 if quick else 20000)
    a.runs = a.runs or (1 if quick else 3)
    a.latency_jobs = a.latency_jobs or (100 if quick else 500)
    a.bulk_jobs = a.bulk_jobs or (10000 if quick else 100000)
    a.only = [w.strip() for w in a.only.split(",") if w.strip() and w.strip() != "W4"]
    bad = [w for w in a.only if w not in WORKLOADS]
    if bad:
        p.error("--only: unknown workload %s (known: %s, W4)" % (", ".join(bad), ", ".join(WORKLOADS)))
    for name in ("jobs", "runs", "slots", "latency_jobs", "bulk_jobs", "timeout_s"):
        if getattr(a, name) <= 0:
            p.error("--%s must be positive, got %d" % (name.replace("_", "-"), getattr(a, name)))
    a.json = a.json or os.path.join(ROOT, "build", "bench-bullmq", "results.jsonl")
    return a


def run_all(a, b, out):
    results = {}
    for rep in range(1, a.runs + 1):
        for wl in a.only:
            for impl in IMPLS:
                log("[run %d/%d] %s %s (load %.2f)" % (rep, a.runs, wl, impl, os.getloadavg()[0]))
                t0 = time.monotonic()
                m = run_one(b, wl, impl)
                rec = dict(workload=wl, impl=impl, run=rep, load1=round(os.getloadavg()[0], 2),
                           wall_s=round(time.monotonic() - t0, 2), **m)
                out.write(json.dumps(rec) + "\n")
                out.flush()
                results.setdefault((wl, impl), []).append(m)
    return results


def main():
    a = parse_args()
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda signum, _frame: sys.exit(128 + signum))
    server = bench = None
    workdir = tempfile.mkdtemp(prefix="orchcore-bench-bullmq-logs-")
    try:
        exe, build_dir = prepare(a)
        env = environment(build_dir)
        os.makedirs(os.path.dirname(os.path.abspath(a.json)), exist_ok=True)
        server = RedisServer()
        bench = Bench(a, server, exe, workdir)
        load_before = os.getloadavg()
        config = dict(jobs=a.jobs, runs=a.runs, slots=a.slots, latency_jobs=a.latency_jobs,
                      bulk_jobs=a.bulk_jobs, payload_bytes=len('{"i":12345,"s":"0123456789abcdef"}'))
        with open(a.json, "w") as out:
            out.write(json.dumps(dict(kind="config", **config, **env)) + "\n")
            results = run_all(a, bench, out)
            load_after = os.getloadavg()
            med = medians(results)
            for (wl, impl), m in sorted(med.items()):
                out.write(json.dumps(dict(kind="median", workload=wl, impl=impl, **m)) + "\n")
            out.write(json.dumps(dict(kind="load", before=load_before, after=load_after)) + "\n")
    except BenchError as e:
        log("bench/bullmq: FAILED: %s\n  driver logs kept in %s" % (e, workdir))
        return 1
    finally:
        if bench:
            bench.kill_all()
            bench.admin.close()
        if server:
            server.cleanup()
    shutil.rmtree(workdir, ignore_errors=True)
    print("orchcore vs BullMQ %s on redis-server (%s)" % (env["bullmq"], env["redis_server"]))
    print("jobs %d, slots %d, medians of %d interleaved runs; JSON lines: %s" % (a.jobs, a.slots, a.runs, a.json))
    print(table(a, med))
    print("load average (1/5/15 min): before %s, after %s" % (
        "/".join("%.2f" % x for x in load_before), "/".join("%.2f" % x for x in load_after)))
    print("machine: %s" % env["machine"])
    print("versions: %s, node %s, bullmq %s, %s, orchcore %s" % (
        env["redis_server"], env["node"], env["bullmq"], env["cxx"], env["orchcore_commit"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
