from __future__ import annotations

from backfill_ctl.cli.main import main

if __name__ == "__main__":
    main()
