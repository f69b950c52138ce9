"""The spec format: YAML documents of the kinds Workspace, ResourceGroup, Node, Config
and Backfill (DESIGN §2), read with their positions, checked against `schemas/`, and
built into typed models (`model.py`), with the node graph they declare (`catalog.py`).

The lowest layer after `errors`: it knows nothing of plans, stores or backends.
A new spec field goes into the schema, `model.py` and `build.py` (defaults come from the
schema); a new way of reading specs (a directory, a git ref) goes beside `source.py`.
"""
