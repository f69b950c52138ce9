"""Tools of the tests that people run too (`python -m tests.tools.postgres ...`)."""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable


def serve_until_stopped(stop: Callable[[], None]) -> None:
    """Wait for Ctrl-C or SIGTERM, then `stop()` (a second signal cannot cut it short)."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        signal.pause()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)
        stop()
