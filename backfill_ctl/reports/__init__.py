"""Renderings for people and for tools, chosen by name (`registry.REPORTER_BY_NAME`):
plans (table, markdown, mermaid, json), check results (text, GitHub annotations,
markdown) and listings (`get`: table, wide, json, yaml, name). No Typer here: a
reporter writes to a `base.Sink`. A new output format is a reporter registered by name.
"""
