"""What each verb does, callable without the CLI.

- `plan`, `check` (with `policies`), `apply` (prepare, changes, commit) and its parts:
  `desired` (what the specs want stored) and `reconcile` (the changes, pure);
- `operations` (stop, rerun, set-success, freeze, unfreeze of instances) and
  `backfill_ops` (stop and delete of a whole backfill), under the rules of `access`;
- `retention` (gc) and `progress` (what get and describe show);
- `plan_data`: a plan as the JSON document `plan -o json` and policies receive.

Use cases read specs, call the core, and read or change the state store through its
narrow protocols. They never print and never read the clock (the caller passes `now`):
the CLI renders what they return. A new verb goes here first, then gets its command in
`cli/`.
"""
