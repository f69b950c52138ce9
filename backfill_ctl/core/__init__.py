"""The planning core: pure functions from specs to plans and decisions. No clock, no I/O,
no subprocess (`now` is passed in; import-linter and `tests/core/test_purity.py` hold it).

- `schedules`: cron schedules, business dates and the ticks of a day;
- `selection`, `planner`, `slots`: which nodes and dates a Backfill selects, the exact
  instances it plans in order, and which stored instance holds which planned slot;
- `params`, `timeexpr`: parameters and their time expressions;
- `semantics`: the rules a JSON Schema cannot say (references, loops, templates);
- `records`: the records of the state store, shared by every layer above.

A new rule of planning goes here, with its typed reason.
"""
