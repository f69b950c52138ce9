"""Renderings of plans (and later, check results) for people and for tools."""
