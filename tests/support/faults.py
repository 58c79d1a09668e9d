"""The fault campaign's seed: fixed per test, replayable from the environment."""

from __future__ import annotations

import os


def fault_seed(default: int) -> int:
    """FAULT_SEED from the environment (to replay a run), else the test's fixed seed."""
    return int(os.environ.get("FAULT_SEED", default))
