"""Unsubscribes arriving while workers drain the outbox: nothing reaches an address after its
unsubscribe committed."""

from __future__ import annotations

import datetime as dt
import random
import threading
import time

import pytest
from sqlalchemy import func, select

from tests.delivery.factories import seed_simple
from tests.delivery.procs import start_worker, worker_env
from tests.delivery.smtp_server import Recorder, SmtpServer
from winback.delivery.suppression import unsubscribe
from winback.models.campaigns import CustomerEvent
from winback.models.customer import Customer
from winback.models.delivery import OutboxMessage

OUTBOX = OutboxMessage.__table__


@pytest.mark.timeout(240)
def test_no_message_after_unsubscribe_committed(workspace, engine, tmp_path):
    n = 3000
    with engine.begin() as conn:
        _, emails = seed_simple(conn, n, due_at=dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc))
    rng = random.Random(11)
    order = emails[:]
    rng.shuffle(order)
    committed: dict[str, float] = {}
    recorder = Recorder(keep_content=False)

    def unsubscriber(stop: threading.Event) -> None:
        for address in order:
            if stop.is_set():
                return
            unsubscribe(engine, address, source="one-click")
            committed[address] = time.time()  # after the commit returned

    with SmtpServer(recorder) as server:
        env = worker_env(workspace, server.port, batch_size=50, smtp_connections=4)
        procs = [start_worker(workspace, env, f"w{i}", tmp_path / "worker.log") for i in range(2)]
        deadline = time.monotonic() + 60
        while not recorder.received and time.monotonic() < deadline:
            time.sleep(0.002)
        stop = threading.Event()
        thread = threading.Thread(target=unsubscriber, args=(stop,))
        thread.start()
        for proc in procs:
            assert proc.wait(timeout=180) == 0, (tmp_path / "worker.log").read_text()[-2000:]
        stop.set()
        thread.join()

    received_at: dict[str, list[float]] = {}
    for r in recorder.received:
        received_at.setdefault(r.rcpt[0].lower(), []).append(r.at)
    late = [(a, t, received_at[a]) for a, t in committed.items() if any(x >= t for x in received_at.get(a, []))]
    assert late == []
    # the race was really run both ways: some addresses got their message before unsubscribing,
    # some unsubscribed first and were suppressed at send time
    before = sum(1 for a in committed if a in received_at)
    suppressed_first = sum(1 for a in committed if a not in received_at)
    assert before > 0 and suppressed_first > 0, (before, suppressed_first)
    with engine.connect() as conn:
        suppressed = conn.execute(select(func.count()).where(OUTBOX.c.status == "suppressed")).scalar_one()
        opted_out = conn.execute(select(func.count()).select_from(Customer.__table__)
                                 .where(Customer.__table__.c.marketing_opt_out.is_(True))).scalar_one()
        events = conn.execute(select(func.count()).select_from(CustomerEvent.__table__)
                              .where(CustomerEvent.__table__.c.type == "unsubscribed")).scalar_one()
    assert suppressed == suppressed_first
    assert opted_out == len(committed) == events
    print(f"\n{len(committed)} unsubscribes during the run: {before} after their message, "
          f"{suppressed_first} before (suppressed)")
