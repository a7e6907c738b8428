"""Run ``winback worker`` in child processes (for crash and race tests)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from winback.config import Settings


def worker_env(settings: Settings, smtp_port: int, **delivery) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "WINBACK_NOW": "",  # the real clock: leases must expire in real time
        "WINBACK_DELIVERY__EMAIL_CHANNEL": "smtp",
        "WINBACK_DELIVERY__SMTP_HOST": "127.0.0.1",
        "WINBACK_DELIVERY__SMTP_PORT": str(smtp_port),
        "WINBACK_DELIVERY__QUIET_HOURS_START": "0",  # whatever the hour of the test run
        "WINBACK_DELIVERY__QUIET_HOURS_END": "0",
    })
    for key, value in delivery.items():
        env[f"WINBACK_DELIVERY__{key.upper()}"] = str(value)
    return env


def start_worker(settings: Settings, env: dict[str, str], name: str, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "winback", "worker", "-w", str(settings.workspace), "--until-idle", "--id", name,
         "--json"], env=env, stdout=open(log, "ab"), stderr=subprocess.STDOUT)
