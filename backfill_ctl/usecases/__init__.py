"""What each verb does, callable without the CLI: plan, check, apply (`reconcile`),
operations (stop, rerun, set-success, freeze, delete), retention (gc), progress (what
get and describe show), and the rules around them (`access`, `policies`).

Use cases read specs, call the core, and read or change the state store through its
protocols. They never print: the CLI renders what they return. A new verb goes here
first, then gets its command in `cli/`.
"""
