"""`python -m bench [NAME ...]`: run the benchmarks (all by default), print one table, exit 1 on a missed target.

python -m bench              # everything (what `make bench` runs)
python -m bench ack store    # only these
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from collections.abc import Callable, Sequence

from bench import ack, alarm, judge, metrics_calls, peers, store, store_dynamo, tick
from bench.harness import Check, crashed, format_table

BENCHMARKS: dict[str, Callable[[], list[Check]]] = {
    "ack": ack.run,
    "alarm": alarm.run,
    "peers": peers.run,
    "tick": tick.run,
    "metrics_calls": metrics_calls.run,
    "store": store.run,
    "judge": judge.run,
    "store_dynamo": store_dynamo.run,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="canary-bot's speed and memory targets, each measured against a baseline in the same run.",
    )
    parser.add_argument(
        "names", nargs="*", metavar="NAME", help=f"benchmarks to run: {', '.join(BENCHMARKS)}"
    )
    args = parser.parse_args(argv)
    unknown = [name for name in args.names if name not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    selected = args.names or list(BENCHMARKS)

    checks: list[Check] = []
    started = time.perf_counter()
    for name in selected:
        print(f"running {name} …", file=sys.stderr, flush=True)
        began = time.perf_counter()
        try:
            checks.extend(BENCHMARKS[name]())
        except Exception as exc:  # one broken benchmark must not hide the others' results
            traceback.print_exc()
            checks.append(crashed(name, exc))
        print(f"  {name} took {time.perf_counter() - began:.1f} s", file=sys.stderr, flush=True)

    print(format_table(checks))
    missed = [c for c in checks if not c.passed]
    took = time.perf_counter() - started
    if missed:
        print(f"\n🔴 {len(missed)} of {len(checks)} targets missed ({took:.0f} s):")
        for check in missed:
            print(f"   - {check.name}: wanted {check.target}" + (f" ({check.note})" if check.note else ""))
        return 1
    print(f"\n✅ all {len(checks)} targets met ({took:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
