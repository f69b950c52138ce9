"""The SQL stores' records, one module per kind, each a part of a store class: SQLite's
(state/sqlite/) and PostgreSQL's (state/postgres/) are these parts on their own
connection (`base.SQLStore`: the transaction, reads, and the SQL that differs).

- `backfills.py`: backfills, resource groups and `save_apply` (what apply writes);
- `instances.py`: instances, the scheduler's task rows, transitions, waiting states;
- `attempts.py`: attempts, fenced by the lease; the first end report wins;
- `events.py`: the event log; `lease.py`: the controller lease and its fence;
- `retention.py`: what gc weighs and deletes;
- `logs.py`: the copies of attempts' logs (schema 6); `transfer.py`: a store's rows as
  they are, for `state migrate`.
"""
