"""backfillctl: declarative, reviewed backfills for DAGs of scheduled tasks."""

from __future__ import annotations

__version__ = "0.1.0"
