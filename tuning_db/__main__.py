"""``python -m tuning_db ...``: the tuning-database commands without importing torch."""

from __future__ import annotations

import sys

from tuning_db.cli import main

if __name__ == "__main__":
    sys.exit(main())
