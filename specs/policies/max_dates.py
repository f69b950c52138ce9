"""An extension check (a policy): no Backfill may run more than N business dates of a
workspace. Config:

    spec:
      policies:
        - name: max-dates
          command: [python3, policies/max_dates.py, --workspace, retail_dw, --max-dates, "31"]

backfillctl sends the review (the plan, and each scope node's workspace) on stdin and
reads {"findings": [...]} from stdout; an error finding blocks apply.
"""

from __future__ import annotations

import argparse
import json
import sys


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workspace", required=True)
    parser.add_argument("--max-dates", type=int, required=True)
    args = parser.parse_args()
    review = json.load(sys.stdin)
    workspace_of = {name: node["workspace"] for name, node in review["nodes"].items()}
    findings = []
    for backfill in review["plan"]["backfills"]:
        dates = {
            i["bizdate"]
            for i in backfill["instances"]
            if workspace_of.get(i["node"]) == args.workspace and not i["dryRun"]
        }
        if len(dates) > args.max_dates:
            findings.append(
                {
                    "backfill": backfill["name"],
                    "severity": "error",
                    "message": f"it runs {len(dates)} business dates of workspace "
                    f"{args.workspace}; at most {args.max_dates} are allowed",
                    "hint": "split it into Backfills of fewer dates, applied one after another",
                }
            )
    json.dump({"findings": findings}, sys.stdout)


if __name__ == "__main__":
    main()
