from __future__ import annotations

from backfill_ctl.cli.main import console

if __name__ == "__main__":
    console()
