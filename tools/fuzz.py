"""A long fuzzing run over every reader of untrusted bytes (the targets of tests/reliability/test_fuzz.py).

    python tools/fuzz.py                 # 2000 examples per target, fresh randomness
    python tools/fuzz.py --examples 500
    python tools/fuzz.py -k "dataset_check or memory_plan or bad_samples"   # issue 16's paths

Targets include the paths of the memory budget and of bad training files: the training data check
(file headers; a two-frame tree with a fuzzed frame and label), ``--max-memory`` text and any frame
size through the plan (a plan within the budget, or an EvssError), and unreadable samples mid-run
(ByPosition's stand-ins, collate, the --max-bad-files count).

Runs tests/reliability/test_fuzz.py with EVSS_FUZZ_EXAMPLES set, then prints, per target, how many inputs were
tried and how each ended: ``ok`` (read without complaint), the EvssError subclass that refused it,
or ``CRASH <type>`` (any other exception: a bug; pytest then prints the shrunk input). Counts can
exceed the example count where one example feeds several readers (three label readers, two
image readers) or where hypothesis replays a failure while shrinking it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--examples", type=int, default=int(os.environ.get("EVSS_FUZZ_EXAMPLES", "2000")))
    p.add_argument("-k", default=None, help="only the targets whose test name matches (pytest -k)")
    args = p.parse_args()
    report = Path(tempfile.mkdtemp(prefix="evss-fuzz-report-")) / "outcomes.json"
    env = {**os.environ, "EVSS_FUZZ_EXAMPLES": str(args.examples), "EVSS_FUZZ_REPORT": str(report)}
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(ROOT / "tests" / "test_fuzz.py")]
    if args.k:
        cmd += ["-k", args.k]
    print(f"fuzzing: {args.examples} examples per target, python {sys.version.split()[0]}", flush=True)
    t0 = time.perf_counter()
    rc = subprocess.run(cmd, env=env, cwd=ROOT).returncode
    wall = time.perf_counter() - t0
    outcomes = json.loads(report.read_text()) if report.exists() else {}
    print(f"\n{'target':32s} {'inputs':>7s}  outcomes")
    total = crashes = 0
    for target, counts in outcomes.items():
        n = sum(counts.values())
        total += n
        crashes += sum(v for k, v in counts.items() if k.startswith("CRASH"))
        detail = ", ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1]))
        print(f"{target:32s} {n:7d}  {detail}")
    print(f"\n{total} inputs in {wall:.0f} s; {crashes} crashes; pytest exit status {rc}")
    return rc


if __name__ == "__main__":
    sys.exit(main())
