"""What runs a backfill after apply.

- `scheduler` (pure): which pending instance may start now; why the others wait comes
  from `core.gates`, decided once and stored;
- `controller`: the loop that keeps the store and the backend in line, made of
  `lease` (the lease and its fencing, waiting for an unwritable store, signals) and
  `attempts` (start, follow, stop and record attempts);
- `reapply`: the controller re-applies each Backfill as its recorded applier;
- `alerts`: what is sent when a backfill ends.
"""
