"""enqueue (idempotent), unsubscribe (the web app's call), suppression helpers, the CLI."""

from __future__ import annotations

import datetime as dt
import json

from sqlalchemy import func, select
from typer.testing import CliRunner

from tests.delivery.factories import add_customer, message_row
from winback.cli.app import app
from winback.delivery import outbox, suppression
from winback.models.campaigns import CustomerEvent
from winback.models.customer import Customer
from winback.models.delivery import OutboxMessage

OUTBOX = OutboxMessage.__table__
NOW = dt.datetime(2026, 1, 15, 12, tzinfo=dt.timezone.utc)


def test_enqueue_is_idempotent(engine):
    rows = [message_row(f"enr:{i}:step:0", f"e{i}@example.net") for i in range(3)]
    for r in rows:
        r["headers"] = json.loads(r["headers"])  # dicts are accepted too
    with engine.begin() as conn:
        assert outbox.enqueue(conn, rows, now=NOW) == 3
    with engine.begin() as conn:
        assert outbox.enqueue(conn, rows + [message_row("enr:9:step:0", "x@example.net")], now=NOW) == 1
        assert conn.execute(select(func.count()).select_from(OUTBOX)).scalar_one() == 4
        stored = conn.execute(select(OUTBOX.c.headers).where(OUTBOX.c.idempotency_key == "enr:0:step:0")).scalar_one()
    assert json.loads(stored)["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_unsubscribe_sets_opt_out_event_and_suppression_once(engine):
    with engine.begin() as conn:
        cid = add_customer(conn, "ada@example.net")
    result = suppression.unsubscribe(engine, "  ADA@example.net ", now=NOW)
    assert result.newly_suppressed and result.customer_ids == [cid]
    with engine.connect() as conn:  # a Connection works too
        again = suppression.unsubscribe(conn, "ada@example.net", now=NOW)
    assert not again.newly_suppressed and again.customer_ids == [cid]
    with engine.connect() as conn:
        customer = conn.execute(select(Customer.__table__).where(Customer.__table__.c.id == cid)).one()
        events = conn.execute(select(CustomerEvent.__table__.c.type)).scalars().all()
        assert suppression.check(conn, "ada@example.net", "commercial") == "unsubscribed (commercial)"
        assert suppression.check(conn, "ada@example.net", "transactional") is None
    assert customer.marketing_opt_out and customer.opted_out_at == NOW
    assert events == ["unsubscribed"]


def test_suppression_helpers_validate(engine):
    import pytest

    from winback.kit.errors import WinbackError
    with engine.begin() as conn:
        with pytest.raises(WinbackError, match="unknown suppression reason"):
            suppression.add(conn, "a@example.net", "because")
        with pytest.raises(WinbackError, match="control characters"):
            suppression.add(conn, "a@example.net\r\nx", "manual")
        assert suppression.add(conn, "a@example.net", "manual") is True
        assert suppression.add(conn, "A@example.net", "manual") is False
        assert suppression.remove(conn, "a@example.net") == 1


def test_cli_worker_and_suppressions(workspace, engine):
    with engine.begin() as conn:
        cid = add_customer(conn, "cli@example.net")
        outbox.enqueue(conn, [message_row("cli", "cli@example.net", customer_id=cid),
                              message_row("cli2", "blocked@example.net", customer_id=cid)], now=NOW)
    runner = CliRunner()
    ws = str(workspace.workspace)
    res = runner.invoke(app, ["suppressions", "add", "blocked@example.net", "complaint", "-w", ws, "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout)["added"] is True
    res = runner.invoke(app, ["suppressions", "add", "x@example.net", "nonsense", "-w", ws])
    assert res.exit_code == 1 and "unknown suppression reason" in res.stderr
    res = runner.invoke(app, ["worker", "-w", ws, "--until-idle", "--id", "cli-w", "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert (summary["sent"], summary["suppressed"]) == (1, 1)
    res = runner.invoke(app, ["suppressions", "list", "-w", ws, "--json"])
    assert [s["address"] for s in json.loads(res.stdout)["suppressions"]] == ["blocked@example.net"]
    res = runner.invoke(app, ["suppressions", "remove", "blocked@example.net", "-w", ws])
    assert res.exit_code == 0
    res = runner.invoke(app, ["suppressions", "remove", "blocked@example.net", "-w", ws])
    assert res.exit_code == 1 and "not suppressed" in res.stderr
    files = list((workspace.workspace / "outbox" / "maildir" / "new").iterdir())
    assert len(files) == 1
