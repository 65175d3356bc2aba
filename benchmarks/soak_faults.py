"""Soak: the fault suite's trials (tests/faults.py), many of them, longer.

    python benchmarks/soak_faults.py                       # 100 trials of 3 s
    python benchmarks/soak_faults.py --trials 300 --duration 5 --first-seed 1000
    python benchmarks/soak_faults.py --minutes 30          # as many trials as fit

Each trial runs gitexp writers (threads and processes: metrics, params, artifacts,
short runs and a long run with live checkpoints) beside a loop of `git repack -a -d`,
`git gc --prune=now`, `git maintenance run` and `git pack-refs --all`, a user who
checks the tracking branch out in a worktree and commits there, and random SIGKILLs
of writers; then `gitexp doctor` recovers and the trial checks `git fsck --strict`,
that every acknowledged write is on the branch, that no run is left RUNNING and that
nothing (journals, live/pending refs, keep files, locks) is left behind.

Prints one line per trial and a JSON summary last; failed trials keep their
directory (acks, writer stderr, the repository) for inspection.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections import Counter

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from tests.faults import FaultTrial


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--minutes", type=float, default=None, help="stop starting trials after this long")
    parser.add_argument("--duration", type=float, default=3.0, help="seconds of faults per trial")
    parser.add_argument("--kills", type=int, default=2, help="SIGKILLs per trial")
    parser.add_argument("--first-seed", type=int, default=10_000)
    args = parser.parse_args()

    started = time.monotonic()
    totals: Counter = Counter()
    errors: Counter = Counter()
    failed = []
    done = 0
    for seed in range(args.first_seed, args.first_seed + args.trials):
        if args.minutes is not None and time.monotonic() - started > args.minutes * 60:
            break
        where = tempfile.mkdtemp(prefix=f"gitexp-soak-{seed}-")
        report = FaultTrial(os.path.join(where, "trial"), seed=seed, duration=args.duration, kills=args.kills).run()
        done += 1
        totals.update(report.counts)
        errors.update(report.errors)
        print(report.describe(), flush=True)
        if report.ok:
            shutil.rmtree(where, ignore_errors=True)
        else:
            failed.append({"seed": seed, "dir": where, "problems": report.problems[:10]})
    summary = {
        "trials": done, "ok": done - len(failed), "failed": failed,
        "duration_per_trial_s": args.duration, "kills_per_trial": args.kills,
        "wall_minutes": round((time.monotonic() - started) / 60, 1),
        "totals": dict(totals), "expected_writer_errors": dict(errors),
    }
    print(json.dumps(summary, indent=1))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
