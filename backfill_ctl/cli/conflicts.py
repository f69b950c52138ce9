"""Options that contradict each other are refused (exit 2) with a message naming both.

`refuse` says so for two options given together (`apply --dry-run --wait`). An
instance id named with another backfill's `--backfill` is refused by the operations
(`usecases.operations.mismatch`).
"""

from __future__ import annotations

from backfill_ctl.errors import UsageError


def refuse(first: str, second: str, why: str, hint: str) -> UsageError:
    """The error for two options that cannot be given together."""
    return UsageError(f"{first} and {second} contradict each other: {why}", hint=hint)
