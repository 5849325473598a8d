"""`python -m nocodetune.training JOB_DIR`: train one job folder, reporting to logs/events.jsonl."""

from __future__ import annotations

import sys

from nocodetune.training.runner import main

if __name__ == "__main__":
    sys.exit(main())
