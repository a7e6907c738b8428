"""The embedded maildir channel, phone tasks, signed webhooks and retargeting audiences."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import http.server
import json
import mailbox
import threading

from sqlalchemy import select

from tests.delivery.conftest import configure, drain
from tests.delivery.factories import add_campaign, add_customer, insert_messages, message_row
from winback.delivery.channels import Item
from winback.delivery.channels.maildir import MaildirChannel
from winback.models.delivery import CallTask, OutboxMessage

OUTBOX = OutboxMessage.__table__


def statuses(engine):
    with engine.connect() as conn:
        return {r.idempotency_key: (r.status, r.status_reason) for r in conn.execute(select(OUTBOX))}


def test_maildir_one_file_per_message_that_parses_back(workspace, engine, clock):
    with engine.begin() as conn:
        cid = add_customer(conn, "m@example.net")
        insert_messages(conn, [message_row(f"m{i}", "m@example.net", customer_id=cid, category="transactional",
                                           headers={}) for i in range(3)])
    assert drain(workspace, clock).sent == 3
    box = mailbox.Maildir(str(workspace.workspace / "outbox" / "maildir"), create=False)
    messages = sorted(box, key=lambda m: m["Message-ID"])
    assert [m["Message-ID"] for m in messages] == [f"<m{i}.t@winback.test>" for i in range(3)]
    assert all(m["To"] == "m@example.net" for m in messages)
    # handing the same message over again (a crash before the outcome was recorded) adds no file
    channel = MaildirChannel(workspace.workspace / "outbox" / "maildir")
    row = {"message_id": "<m0.t@winback.test>"}
    result = asyncio.run(channel.deliver([Item(row=row, raw=b"Subject: x\r\n\r\nbody\r\n")]))
    assert result[0].outcome == "sent" and len(list(box.keys())) == 3
    assert list((workspace.workspace / "outbox" / "maildir" / "tmp").iterdir()) == []


def test_maildir_batch_is_written_whole_and_skips_messages_a_reader_moved(tmp_path):
    folder = tmp_path / "maildir"
    channel = MaildirChannel(folder, threads=4)
    items = [Item(row={"message_id": f"<b{i}@x>"}, raw=f"Subject: {i}\r\n\r\nbody {i}\r\n".encode())
             for i in range(40)]
    try:
        results = asyncio.run(channel.deliver(items))
        assert [r.outcome for r in results] == ["sent"] * 40
        assert all(r.detail.startswith("maildir new/") for r in results)
        box = mailbox.Maildir(str(folder), create=False)
        assert sorted(m["Subject"] for m in box) == sorted(str(i) for i in range(40))
        # a mail reader moves one to cur/ (name:2,S); handing it over again writes nothing new
        name = channel.file_name(items[0])
        (folder / "new" / name).rename(folder / "cur" / f"{name}:2,S")
        again = asyncio.run(channel.deliver(items[:2]))
        assert [r.detail for r in again] == [f"already in maildir as {channel.file_name(i)}" for i in items[:2]]
        assert len(list((folder / "new").iterdir())) == 39 and list((folder / "tmp").iterdir()) == []
    finally:
        asyncio.run(channel.close())


def test_task_channel_creates_one_call_task(workspace, engine, clock):
    with engine.begin() as conn:
        cid = add_customer(conn, "t@example.net")
        camp = add_campaign(conn)
        insert_messages(conn, [message_row("t", None, customer_id=cid, campaign_id=camp, channel="task",
                                           payload={"task": {"title": "Call Ada", "body": "Top customer",
                                                             "phone": "+4930123456"}}),
                               message_row("t-bad", None, customer_id=cid, channel="task", payload={"task": {}})])
    drain(workspace, clock)
    got = statuses(engine)
    assert got["t"][0] == "sent" and got["t-bad"][0] == "failed" and "task.title" in got["t-bad"][1]
    with engine.connect() as conn:
        tasks = conn.execute(select(CallTask.__table__)).all()
    assert [(t.title, t.body, t.phone, t.status, t.customer_id, t.campaign_id) for t in tasks] == [
        ("Call Ada", "Top customer", "+4930123456", "open", cid, camp)]


class Hook(http.server.BaseHTTPRequestHandler):
    received: list = []
    secret = b"s3cret"

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        ts = self.headers["X-Winback-Timestamp"]
        expected = "sha256=" + hmac.new(self.secret, ts.encode() + b"." + body, hashlib.sha256).hexdigest()
        ok = hmac.compare_digest(expected, self.headers["X-Winback-Signature"])
        Hook.received.append((ok, json.loads(body), self.headers["Idempotency-Key"]))
        payload = json.loads(body)["data"]
        code = 200 if ok and not payload.get("reject") else (503 if payload.get("busy") else 400)
        self.send_response(code)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_webhook_channel_posts_signed_json(workspace, engine, clock):
    Hook.received = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with engine.begin() as conn:
            cid = add_customer(conn, "h@example.net")
            insert_messages(conn, [
                message_row("h1", None, customer_id=cid, channel="webhook", category="transactional",
                            payload={"webhook": {"action": "create_deal", "value": 120}}),
                message_row("h2", None, customer_id=cid, channel="webhook", category="transactional",
                            payload={"webhook": {"reject": True}}),
                message_row("h3", None, customer_id=cid, channel="webhook", category="transactional",
                            payload={"webhook": {"reject": True, "busy": True}}),
            ])
        settings = configure(workspace, webhook_url=f"http://127.0.0.1:{server.server_port}/hook",
                             webhook_secret="s3cret")
        drain(settings, clock)
    finally:
        server.shutdown()
    got = statuses(engine)
    assert got["h1"][0] == "sent" and got["h2"][0] == "failed" and got["h3"][0] == "pending"
    ok, body, key = next(r for r in Hook.received if r[2] == "h1")
    assert ok and body["data"] == {"action": "create_deal", "value": 120} and body["customer_id"] == cid
    assert all(r[0] for r in Hook.received)  # every request carried a valid signature


def test_audience_channel_appends_hashed_emails_once(workspace, engine, clock):
    with engine.begin() as conn:
        a = add_customer(conn, "a@example.net", basis="none")  # no email permission: retargeting instead
        b = add_customer(conn, "b@example.net", basis="none")
        out = add_customer(conn, "out@example.net", basis="none", opt_out=True)
        audience = {"audience": {"name": "lost-buyers"}}
        insert_messages(conn, [
            message_row("a1", " A@Example.net", customer_id=a, channel="audience", payload=audience),
            message_row("a2", "a@example.net", customer_id=a, channel="audience", payload=audience, step=1),
            message_row("b1", "b@example.net", customer_id=b, channel="audience", payload=audience),
            message_row("o1", "out@example.net", customer_id=out, channel="audience", payload=audience),
        ])
    drain(workspace, clock)
    got = statuses(engine)
    assert [got[k][0] for k in ("a1", "a2", "b1", "o1")] == ["sent", "sent", "sent", "suppressed"]
    lines = (workspace.workspace / "outbox" / "audiences" / "lost-buyers.csv").read_text().splitlines()
    assert lines == ["email_sha256", hashlib.sha256(b"a@example.net").hexdigest(),
                     hashlib.sha256(b"b@example.net").hexdigest()]
