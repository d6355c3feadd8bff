"""Brokers for the Python tests: the ones named by KAFKA_BOOTSTRAP and NATS_URL when both are
set, else Apache Kafka and nats-server started on free loopback ports by the suite's
``dft-brokers`` program (``$DFT_BROKERS``, built by scripts/test.sh), stopped at the end."""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def brokers() -> dict[str, str]:
    if os.environ.get("KAFKA_BOOTSTRAP") and os.environ.get("NATS_URL"):
        yield {"kafka": os.environ["KAFKA_BOOTSTRAP"], "nats": os.environ["NATS_URL"]}
        return
    program = os.environ.get("DFT_BROKERS")
    if not program:
        pytest.exit(
            "no brokers: set KAFKA_BOOTSTRAP and NATS_URL (scripts/brokers.sh prints them), "
            "or DFT_BROKERS to the dft-brokers program (scripts/test.sh does)",
            returncode=2,
        )
    with tempfile.TemporaryDirectory(prefix="dft-py-brokers-") as tmp:
        env_file = Path(tmp) / "brokers.env"
        log = open(Path(tmp) / "brokers.log", "w")
        # The program stops its brokers when its standard input closes, so they end with
        # this process even when it is killed.
        proc = subprocess.Popen(
            [program, "--env-file", str(env_file), "--until-stdin-closes"],
            stdin=subprocess.PIPE,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 180
        while not env_file.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                log.close()
                pytest.exit(
                    "dft-brokers did not start:\n" + (Path(tmp) / "brokers.log").read_text(),
                    returncode=2,
                )
            time.sleep(0.2)
        values = dict(
            line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line
        )
        try:
            yield {"kafka": values["KAFKA_BOOTSTRAP"], "nats": values["NATS_URL"]}
        finally:
            proc.stdin.close()
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
            log.close()


@pytest.fixture
def topic() -> str:
    """A fresh topic (or stream) name."""
    return "py-" + uuid.uuid4().hex[:12]


@pytest.fixture(scope="session")
def env(brokers: dict[str, str]) -> dict[str, str]:
    """The environment for subprocesses: locations without a host take these brokers."""
    out = dict(os.environ)
    out["KAFKA_BOOTSTRAP"] = brokers["kafka"]
    out["NATS_URL"] = brokers["nats"]
    return out
