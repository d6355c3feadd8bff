"""The example the docs point to runs against the test brokers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).parent.parent / "examples" / "orders.py"


def test_orders_example_runs(env):
    done = subprocess.run(
        [sys.executable, str(EXAMPLE)], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert "full_filters=" in done.stdout, done.stdout
    assert done.stdout.strip().splitlines()[-1].startswith("1 batch(es) into kafka topic"), (
        done.stdout
    )
