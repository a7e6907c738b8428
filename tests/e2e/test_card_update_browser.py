"""A customer whose renewal was declined follows the card-update link of a real dunning notice in
the browser, is declined once with a test card, pays with another, and the dashboard's dunning
page shows the recovery (Debian's chromium via Playwright, the sandbox gateway)."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from tests.dunning.flow_helpers import World, with_dunning
from tests.e2e.test_dashboard import _local, local_only, login
from winback.dunning.service import schedule_notices
from winback.models.customer import Customer
from winback.models.delivery import OutboxMessage
from winback.models.dunning import DunningCase, SandboxCharge

pytestmark = pytest.mark.timeout(300)
CARD_LINK = re.compile(r"https?://[^\s<>\"]+/b/[A-Za-z0-9_.\-]+")


def test_customer_updates_the_card_from_a_dunning_notice(context, server):
    settings, engine = server["settings"], server["app"].state.engine
    now = server["app"].state.clock.now()
    with engine.connect() as conn:
        customer = conn.execute(select(Customer.id, Customer.external_id, Customer.email).where(
            Customer.email.is_not(None), Customer.locale.in_(("en", "en-US", "en-GB")))
            .order_by(Customer.id).limit(1)).one()
    world = World(with_dunning(settings))
    try:
        world.clock.at(now)
        who = world.customer(customer.external_id, customer.email, card_behaviour="stolen_card", card="pm_e2e")
        assert world.fail(who, "in_e2e_1", "stolen_card", at=now, amount=2900) == "applied"
        assert schedule_notices(settings, engine=engine, now=now)["case_notices"] == 1
    finally:
        world.dispose()
    with engine.connect() as conn:
        notice = conn.execute(select(OutboxMessage.text_body, OutboxMessage.category, OutboxMessage.subject).where(
            OutboxMessage.idempotency_key.like("dunning:case:%"), OutboxMessage.customer_id == customer.id)).one()
    assert notice.category == "transactional"
    link = _local(server, CARD_LINK.search(notice.text_body).group(0))

    page = context.new_page()
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(link)
    assert page.locator("h1").first.inner_text() == "Update your payment details"
    assert "$29.00" in page.content()

    def pay(number: str) -> None:
        page.fill("input[name=number]", number)
        page.fill("input[name=exp]", "12/30")
        page.fill("input[name=cvc]", "123")
        page.click("button[type=submit]")

    pay("4000 0000 0000 9995")  # Stripe's test card: insufficient funds
    page.wait_for_selector("text=The payment did not go through")
    pay("4242 4242 4242 4242")
    page.wait_for_selector("text=Payment received - thank you!")
    assert not local_only(server, requests)

    with engine.connect() as conn:
        case = conn.execute(select(DunningCase.status, DunningCase.recovered_by).where(
            DunningCase.invoice_ref == "in_e2e_1")).one()
        paid = conn.execute(select(func.count()).select_from(SandboxCharge).where(
            SandboxCharge.invoice_ref == "in_e2e_1", SandboxCharge.status == "succeeded")).scalar_one()
        receipt = conn.execute(select(func.count()).select_from(OutboxMessage).where(
            OutboxMessage.idempotency_key.like("dunning:case:%:recovered"),
            OutboxMessage.customer_id == customer.id)).scalar_one()
    assert (case.status, case.recovered_by, paid, receipt) == ("recovered", "customer_update", 1, 1)

    # the same link again: nothing left to pay
    page.goto(link)
    page.wait_for_selector("text=Nothing to pay")

    login(page, server, "viewer")
    page.goto(server["url"] + "/dunning?since=2000-01-01")
    body = page.locator("main").inner_text()
    assert "customer update" in body.lower() or "customer_update" in body.lower()
