#!/usr/bin/env python3
"""Summarise orchcore_bench_engine JSON output: the ratios of the engine targets.

Usage:
    python3 bench/engine_ratios.py engine.json [more.json ...]

Reads Google Benchmark JSON (--benchmark_format=json or --benchmark_out=...).
Per file (one run: every figure in a ratio comes from the same run) it takes
the "median" aggregate of each benchmark if present, else the median of its
repetitions, and prints:
  1. fire-and-forget pool: each pool's tasks/s; the faster orchcore shape
     over the fastest peer (target >= 2.0x);
  2. full coordinator path (submit, track, await: BM_Tracked<Coordinator*>)
     tasks/s over that orchcore pool figure (target >= 0.5x); BM_Coordinator
     (handle dropped, completion counted) beside it as (2');
  2b. tracked tasks: every BM_Tracked target, and the coordinator's over the
     fastest future-per-task peer;
  2c. worker_pool::submit with a future over TBB task_group + packaged_task
     (target >= 1.0x); 2d. the coordinator's tracked path over the same
     (target >= 0.5x);
  3. submit-to-start latency p50 / p99;
  4. heap bytes per queued tracked task (BM_QueuedBytes), the coordinator's
     over each future-per-task peer's (target <= 2.0x BS::thread_pool's,
     when it is configured).

Standard library only.
"""

import json
import re
import statistics
import sys
from collections import defaultdict

NAME_RE = re.compile(r"^(?P<bench>BM_\w+)<(?P<target>[^>]+)>")
# BsThreadPool, TaskflowExecutor and BsFuture run only when CMake found their
# headers (bench/README.md); a peer missing from the run is left out.
POOL_PEERS = ["AsioThreadPool", "TbbTaskGroup", "MutexCvPool", "BsThreadPool", "TaskflowExecutor"]
TRACKED_PEERS = ["AsioFuture", "TbbFuture", "MutexCvFuture", "BsFuture"]


def load(path):
    with (sys.stdin if path == "-" else open(path, encoding="utf-8")) as f:
        text = f.read()
    return json.loads(text[text.find("{"):])  # tolerate console output before the JSON


def medians(doc):
    """{(bench, target): {"rate": items/s, "p50_us": .., "p99_us": ..}} for one run."""
    agg, reps = {}, defaultdict(list)
    for b in doc.get("benchmarks", []):
        m = NAME_RE.match(b.get("run_name") or b.get("name", ""))
        if not m or b.get("error_occurred"):
            continue
        key = (m.group("bench"), m.group("target"))
        fields = {k: float(b[k]) for k in ("items_per_second", "p50_us", "p99_us", "bytes_per_task") if k in b}
        if b.get("run_type") == "aggregate":
            if b.get("aggregate_name") == "median":
                agg[key] = fields
        else:
            reps[key].append(fields)
    for key, rows in reps.items():
        if key not in agg:
            agg[key] = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
    return agg


def rate(run, bench, target):
    return run.get((bench, target), {}).get("items_per_second")


def fmt(x):
    if x is None:
        return "      n/a"
    return f"{x / 1e6:7.2f} M" if x >= 1e6 else f"{x / 1e3:7.1f} k"


def report(path, run):
    print(f"== {path}")
    pools = {t: rate(run, "BM_Post", t) for (b, t) in run if b == "BM_Post"}
    for t, r in sorted(pools.items(), key=lambda kv: -(kv[1] or 0)):
        print(f"  BM_Post<{t}>: {fmt(r)}/s")
    ours = max((r for t, r in pools.items() if t.startswith("Orchcore") and r), default=None)
    peers = {t: pools.get(t) for t in POOL_PEERS if pools.get(t)}
    if ours and peers:
        best = max(peers, key=peers.get)
        print(f"  (1) pool / fastest peer ({best}): {ours / peers[best]:.2f}x   target >= 2.0x")
    for (b, t), v in sorted(run.items()):
        if b == "BM_Coordinator" and ours:
            print(f"  (2') BM_Coordinator<{t}> (submit + completion, handle dropped): "
                  f"{fmt(v.get('items_per_second'))}/s = {v.get('items_per_second', 0) / ours:.3f}x of the pool")
    tracked = {t: v.get("items_per_second") for (b, t), v in run.items() if b == "BM_Tracked"}
    tpeers = {t: tracked[t] for t in TRACKED_PEERS if tracked.get(t)}
    if tracked:
        for t, r in sorted(tracked.items(), key=lambda kv: -(kv[1] or 0)):
            label = "(2) full path: submit, track, await  " if t.startswith("Coordinator") else ""
            print(f"  {label}BM_Tracked<{t}>: {fmt(r)}/s" + (f" = {r / ours:.3f}x of the pool" if ours and r else "")
                  + ("   target >= 0.5x" if label else ""))
        if tpeers:
            best = max(tpeers, key=tpeers.get)
            for t, r in tracked.items():
                if t.startswith("Coordinator") and r:
                    print(f"  (2b) {t} / fastest future-per-task peer ({best}): {r / tpeers[best]:.2f}x")
        pool_future, tbb_future = tracked.get("PoolSubmitFuture"), tracked.get("TbbFuture")
        # (2c) is worker_pool::submit alone; (2d) is the coordinator's
        # tracked path (id, record, handle, await), a different row.
        for peer in ("TbbFuture", "BsFuture"):
            if pool_future and tracked.get(peer):
                print(f"  (2c) PoolSubmitFuture / {peer} (worker_pool::submit with a future): "
                      f"{pool_future / tracked[peer]:.2f}x   target >= 1.0x")
        if tbb_future:
            for t, r in tracked.items():
                if t.startswith("Coordinator") and r:
                    print(f"  (2d) {t} / TbbFuture (coordinator tracked path): {r / tbb_future:.2f}x   target >= 0.5x")
    for (b, t), v in sorted(run.items()):
        if b == "BM_StartLatency":
            print(f"  (3) start latency {t}: p50 {v.get('p50_us', 0):.1f} us, p99 {v.get('p99_us', 0):.1f} us")
    report_bytes(run)


def report_bytes(run):
    queued = {t: v["bytes_per_task"] for (b, t), v in run.items() if b == "BM_QueuedBytes" and "bytes_per_task" in v}
    ours = queued.get("CoordinatorQueued")
    for t, v in sorted(queued.items(), key=lambda kv: kv[1]):
        print(f"  (4) BM_QueuedBytes<{t}>: {v:.0f} bytes per queued task")
    if ours:
        for t, v in sorted(queued.items(), key=lambda kv: kv[1]):
            if t != "CoordinatorQueued" and v:
                target = "   target <= 2.0x" if t == "BsFutureQueued" else ""
                print(f"  (4) CoordinatorQueued / {t}: {ours / v:.2f}x{target}")
        if "BsFutureQueued" not in queued:
            print("  (4) BsFutureQueued not in this run (BS::thread_pool not configured): "
                  "the target, <= 2.0x its bytes per task, is not checked")


def main(argv):
    if not argv:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    for path in argv:
        report(path, medians(load(path)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
