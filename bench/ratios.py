#!/usr/bin/env python3
"""Summarise orchcore_bench_admission_queue JSON output.

Usage:
    python3 bench/ratios.py out.json [more.json ...] [--check]

Reads Google Benchmark JSON (--benchmark_format=json or --benchmark_out=...).
For every benchmark it takes the "median" aggregate if present (runs with
--benchmark_repetitions), else the median of the per-repetition rows. With
several files (several runs) it prints the median over the files and the
min..max range of the per-file medians, which shows run-to-run noise.

For each threads config it prints the items/s of every queue and the ratio
of OrchcoreRejectNew to that queue, then a matrix of ratios of every orchcore
queue (each policy, and the type-erased one) to every peer queue, then the
library's targets:
    OrchcoreRejectNew >= 2 x TbbBoundedQueue and >= MutexCvDeque (blocking
    pop rows);
    try ops (BM_TransferTry, configs "try ops PxC"): drop-lru and priority,
    with and without wait times, >= 1 x their one-mutex peer
    (MutexDequeDropOldest, MutexPriorityQueue), reported only. items/s
    counts items that reached a consumer (evicted ones do not count); the
    evicted shares are printed next to the ratio;
    try ops, reject-new with and without wait times: 1x1 >= 0.5 x
    AtomicQueue, 2x2 >= 1 x BoostLockfreeQueue and MoodycamelBlockingQueue
    (reported only).
--check: exit with status 1 if a target of OrchcoreRejectNew is missed.

Standard library only.
"""

import json
import re
import statistics
import sys
from collections import defaultdict

NAME_RE = re.compile(r"^BM_Transfer(?P<mode>Try)?<(?P<queue>[^>]+)>/threads:(?P<config>\d+x\d+)")
REFERENCE = "OrchcoreRejectNew"
TARGETS = [("TbbBoundedQueue", 2.0), ("MutexCvDeque", 1.0)]
# Try ops: each locked-queue policy against the peer doing the same policy
# under one mutex (reported; --check ignores them).
POLICY_TARGETS = [("OrchcoreDropLru", "MutexDequeDropOldest", 1.0),
                  ("OrchcoreDropLruNoWaitTimes", "MutexDequeDropOldest", 1.0),
                  ("OrchcorePriority", "MutexPriorityQueue", 1.0),
                  ("OrchcorePriorityNoWaitTimes", "MutexPriorityQueue", 1.0)]
# Try ops, reject-new (the lock-free ring), with and without wait times,
# against the fastest lock-free peers: config -> [(peer, ratio)].
RING_TRY_TARGETS = {"try ops 1x1": [("AtomicQueue", 0.5)],
                    "try ops 2x2": [("BoostLockfreeQueue", 1.0), ("MoodycamelBlockingQueue", 1.0)]}
RING_QUEUES = ["OrchcoreRejectNew", "OrchcoreRejectNewNoWaitTimes"]
ORCHCORE_PREFIX = "Orchcore"
PEERS = ["TbbBoundedQueue", "MutexCvDeque", "BoostLockfreeQueue", "MoodycamelBlockingQueue"]


def load(path):
    with (sys.stdin if path == "-" else open(path, encoding="utf-8")) as f:
        text = f.read()
    # Tolerate console output preceding the JSON (e.g. 2>&1 redirections).
    start = text.find("{")
    return json.loads(text[start:])


EVICTED = {}  # (config, queue) -> [median evicted_pct per file]


def per_file_medians(doc):
    """{(config, queue): (median items/s, cv of time or None)} for one run."""
    medians, cvs, samples = {}, {}, defaultdict(list)
    evicted = defaultdict(list)
    for b in doc.get("benchmarks", []):
        m = NAME_RE.match(b.get("run_name") or b.get("name", ""))
        if not m or b.get("error_occurred"):
            continue
        config = ("try ops " if m.group("mode") else "") + m.group("config")
        key = (config, m.group("queue"))
        if "evicted_pct" in b and b.get("aggregate_name", "median") == "median":
            evicted[key].append(float(b["evicted_pct"]))
        if b.get("run_type") == "aggregate":
            if b.get("aggregate_name") == "median" and "items_per_second" in b:
                medians[key] = float(b["items_per_second"])
            elif b.get("aggregate_name") == "cv":
                cvs[key] = float(b.get("real_time", 0.0))
        elif "items_per_second" in b:
            samples[key].append(float(b["items_per_second"]))
    for key, values in evicted.items():
        EVICTED.setdefault(key, []).append(statistics.median(values))
    for key, values in samples.items():
        if key not in medians:
            medians[key] = statistics.median(values)
            if len(values) > 1 and key not in cvs:
                mean = statistics.fmean(values)
                cvs[key] = statistics.stdev(values) / mean if mean else 0.0
    return {k: (v, cvs.get(k)) for k, v in medians.items()}


def fmt_rate(x):
    return f"{x / 1e6:9.3f} M/s"


def main(argv):
    check = "--check" in argv
    paths = [a for a in argv if a != "--check"]
    if not paths:
        print(__doc__.strip(), file=sys.stderr)
        return 2

    runs = [per_file_medians(load(p)) for p in paths]
    per_key = defaultdict(list)  # (config, queue) -> [(median, cv)] over files
    order = []                   # first-seen order, so peers stay side by side
    for run in runs:
        for key, val in run.items():
            if key not in per_key:
                order.append(key)
            per_key[key].append(val)

    configs = []
    for config, _ in order:
        if config not in configs:
            configs.append(config)

    missed = []
    for config in configs:
        queues = [q for c, q in order if c == config]
        rate = {q: statistics.median(v for v, _ in per_key[(config, q)]) for q in queues}
        ref = rate.get(REFERENCE)
        print(f"== threads {config} (producers x consumers); median items/s over {len(paths)} run(s)")
        header = f"{'queue':<26}{'items/s':>14}"
        if len(paths) > 1:
            header += f"{'range over runs':>26}"
        header += f"{'cv':>8}{REFERENCE + ' / queue':>32}"
        print(header)
        for q in queues:
            vals = per_key[(config, q)]
            line = f"{q:<26}{fmt_rate(rate[q]):>14}"
            if len(paths) > 1:
                lo, hi = min(v for v, _ in vals), max(v for v, _ in vals)
                line += f"{fmt_rate(lo).strip() + ' .. ' + fmt_rate(hi).strip():>26}"
            cvs = [c for _, c in vals if c is not None]
            line += f"{(f'{100 * max(cvs):.1f}%' if cvs else '-'):>8}"
            line += f"{(f'{ref / rate[q]:.2f}x' if ref and rate[q] else '-'):>32}"
            print(line)
        ours = [q for q in queues if q.startswith(ORCHCORE_PREFIX)]
        peers = [p for p in PEERS if rate.get(p)] + [
            q for q in queues if not q.startswith(ORCHCORE_PREFIX) and q not in PEERS and rate.get(q)]
        if ours and peers:
            print(f"ratios (orchcore queue / peer), threads {config}:")
            print(f"{'':<26}" + "".join(f"{p:>24}" for p in peers))
            for q in ours:
                print(f"{q:<26}" + "".join(f"{(rate[q] / rate[p]):>23.2f}x" for p in peers))
        for ours_q, peer, want in POLICY_TARGETS:
            if config.startswith("try ops") and rate.get(ours_q) and rate.get(peer):
                got = rate[ours_q] / rate[peer]
                line = f"target {ours_q} >= {want:g} x {peer}: {got:.2f}x  {'MET' if got >= want else 'MISSED'}"
                if EVICTED.get((config, ours_q)) and EVICTED.get((config, peer)):
                    ev_ours = statistics.median(EVICTED[(config, ours_q)])
                    ev_peer = statistics.median(EVICTED[(config, peer)])
                    line += f"  (evicted {ev_ours:.0f}% / {ev_peer:.0f}%)"
                print(line)
        for ours_q in RING_QUEUES:
            for peer, want in RING_TRY_TARGETS.get(config, []):
                if rate.get(ours_q) and rate.get(peer):
                    got = rate[ours_q] / rate[peer]
                    print(f"target {ours_q} >= {want:g} x {peer}: {got:.2f}x  {'MET' if got >= want else 'MISSED'}")
        if ref and not config.startswith("try ops"):
            for peer, want in TARGETS:
                if peer in rate and rate[peer]:
                    got = ref / rate[peer]
                    ok = got >= want
                    if not ok:
                        missed.append(f"{config}: {REFERENCE}/{peer} = {got:.2f} < {want:g}")
                    print(f"target {REFERENCE} >= {want:g} x {peer}: {got:.2f}x  {'MET' if ok else 'MISSED'}")
        print()

    if missed:
        print("targets missed:\n  " + "\n  ".join(missed))
    return 1 if (check and missed) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
