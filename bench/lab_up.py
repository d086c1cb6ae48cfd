"""Benchmark: `skiff lab up --nodes N` wall time, median of R runs, one lab at a time.

Each run: `skiff lab up` (its own free prefix and subnet, the lab's defaults otherwise) timed
from the command's start to its exit (the lab answers then: replicas ready, agents joined,
nodes Ready), then `skiff lab down`. Prints each run's time, the phases line `lab up`
reports, the median, and the load average before and after, so a figure can be judged
against the machine's state (2 shared CPUs here). The reference for issue 10's "the lab
through the installer" change: run it before and after in the same session.

    .venv/bin/python bench/lab_up.py [--nodes 2] [--runs 3] [--json FILE]
"""

import argparse
import json
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from labkit import LabSession, install_sigterm, load_avg, log  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, default=2)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args()
    install_sigterm()
    before = load_avg()
    runs = []
    for i in range(args.runs):
        with LabSession(f"labup{i}") as s:
            took = s.up(args.nodes)
            runs.append({"s": round(took, 2), "phases": s.up_phases()})
            log(f"run {i + 1}: lab up --nodes {args.nodes}: {took:.1f} s ({runs[-1]['phases']})")
    med = statistics.median(r["s"] for r in runs)
    after = load_avg()
    print(f"| lab up --nodes {args.nodes} | " + " | ".join(f"{r['s']:.1f}" for r in runs) + f" | **{med:.1f}** |")
    print(f"load average (1/5/15 min) before: {before}; after: {after}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"nodes": args.nodes, "runs": runs, "median_s": med, "load_before": before,
                       "load_after": after}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
