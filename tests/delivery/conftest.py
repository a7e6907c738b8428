"""Fixtures for delivery tests: an engine on the workspace's state store, a pinned clock, a real
SMTP server, and a helper that runs one worker in-process."""

from __future__ import annotations

import asyncio

import pytest

from winback.config import Settings
from winback.delivery.outbox import delivery_engine
from winback.delivery.worker import Worker
from winback.kit.clock import FixedClock, parse_instant

from tests.conftest import TEST_NOW
from tests.delivery.smtp_server import Recorder, SmtpServer


@pytest.fixture
def engine(workspace: Settings):
    eng = delivery_engine(workspace.resolved_state_url)
    yield eng
    eng.dispose()


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(parse_instant(TEST_NOW))


@pytest.fixture
def smtp():
    with SmtpServer(Recorder()) as server:
        yield server


def configure(settings: Settings, **delivery) -> Settings:
    """A copy of the settings with ``[delivery]`` values replaced."""
    copy = settings.model_copy(deep=True)
    for key, value in delivery.items():
        setattr(copy.delivery, key, value)
    return copy


def smtp_settings(settings: Settings, server: SmtpServer, **delivery) -> Settings:
    values = {"email_channel": "smtp", "smtp_host": "127.0.0.1", "smtp_port": server.port,
              "smtp_timeout_seconds": 10.0}
    values.update(delivery)
    return configure(settings, **values)


def drain(settings: Settings, clock, **kwargs):
    """Run one worker until nothing is due; returns its summary."""
    worker = Worker(settings, clock=clock, **kwargs)
    return asyncio.run(worker.run(until_idle=True))
