"""Example job of the retail specs: writes one small output file per node and partition.

    python jobs/etl.py --node dwd_orders --pt 20240301 [--hour 05]

It stands in for a real SQL or Spark job; the output lands in $BACKFILL_OUTPUT
(default: ./out) as <node>/<pt>[-<hour>].txt.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--node", required=True)
    parser.add_argument("--pt", required=True, help="business date, yyyymmdd")
    parser.add_argument("--hour", help="hour of the partition, hh24")
    args = parser.parse_args()
    out = Path(os.environ.get("BACKFILL_OUTPUT", "out")) / args.node
    out.mkdir(parents=True, exist_ok=True)
    name = args.pt + (f"-{args.hour}" if args.hour else "")
    (out / f"{name}.txt").write_text(
        f"node={args.node} pt={args.pt} hour={args.hour or ''} "
        f"cyctime={os.environ.get('BACKFILL_CYCTIME', '')}\n", encoding="utf-8")
    print(f"{args.node}: wrote partition {name}")


if __name__ == "__main__":
    main()
