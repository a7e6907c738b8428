"""The dashboard and the recipient pages in a real browser (Debian's chromium via Playwright).

What a person would see: sign-in (and a wrong password), every dashboard page with its headings and
numbers, Plotly charts actually drawn as SVG from the locally served plotly.min.js, no request to any
other host, sign-out; then a recipient following a real sent message's tracked link, unsubscribing,
the preference centre showing it, and answering the exit survey - each checked in the state store."""

from __future__ import annotations

import email
import email.policy
import re
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Error as PlaywrightError
from sqlalchemy import select

from tests.web.pages_fixtures import PASSWORD
from winback.models.campaigns import Campaign
from winback.models.customer import Customer
from winback.models.delivery import Suppression
from winback.models.tracking import SurveyResponse, TrackingEvent

pytestmark = pytest.mark.timeout(300)
LINK = re.compile(r"https?://[^\s<>\"]+/([cups])/[A-Za-z0-9_.\-]+")


def local_only(server: dict, urls: list[str]) -> list[str]:
    """The URLs that went anywhere but this server (data: and about: stay in the browser)."""
    return [u for u in urls if not (u.startswith(server["url"] + "/") or u == server["url"]
                                    or u.startswith(("data:", "about:", "blob:")))]


def login(page, server: dict, role: str) -> None:
    page.goto(server["url"] + "/")
    assert "/login" in page.url
    page.fill("input[name=email]", f"{role}@example.com")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(server["url"] + "/")


def heading(page) -> str:
    return page.locator("h1").first.inner_text()


def test_dashboard_pages_in_the_browser(context, server):
    page = context.new_page()
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))

    # sign in: a wrong password shows an error, the right one opens the overview
    page.goto(server["url"] + "/campaigns")
    assert "/login?next=/campaigns" in page.url
    page.fill("input[name=email]", "admin@example.com")
    page.fill("input[name=password]", "not the password")
    page.click("button[type=submit]")
    assert page.locator("p.error[role=alert]").inner_text() == "Wrong e-mail address or password."
    page.fill("input[name=email]", "admin@example.com")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(server["url"] + "/campaigns")
    assert heading(page) == "Campaigns"
    assert page.locator(".who .user").inner_text() == "admin@example.com"
    assert page.locator(".who .role").inner_text() == "admin"

    # overview: the figures and two charts drawn by the local Plotly
    page.goto(server["url"] + "/")
    assert heading(page) == "Overview"
    kpis = page.locator(".kpi").all_inner_texts()
    assert any(k.startswith("Churn rate") and "%" in k for k in kpis)
    assert any("Customer retention rate (CRR)" in k and "%" in k for k in kpis)
    assert any("MRR churn" in k for k in kpis)
    assert any("Recovered revenue" in k and "$" in k for k in kpis)
    assert any("Incremental revenue vs holdout" in k for k in kpis)
    sent = next(k for k in kpis if k.startswith("Messages sent"))
    assert int(re.search(r"([\d,]+)", sent).group(1).replace(",", "")) > 100
    page.wait_for_selector("#chart-churn svg.main-svg")
    assert page.locator("#chart-churn .bars path").count() > 3  # one bar per month
    assert page.evaluate("typeof window.Plotly") == "object"
    assert any(u == server["url"] + "/static/plotly.min.js" for u in requests)

    # churn analysis
    page.goto(server["url"] + "/churn")
    assert heading(page) == "Churn analysis"
    page.wait_for_selector("#chart-reasons svg.main-svg")
    reasons = page.locator("table").first.inner_text()
    assert "Involuntary" in reasons and "Price" in reasons

    # at risk, with health factors
    page.goto(server["url"] + "/at-risk?band=watch")
    assert heading(page) == "At-risk customers"
    assert page.locator("ul.factors li").count() > 0

    # segments -> a segment
    page.goto(server["url"] + "/segments")
    assert heading(page) == "Segments"
    page.click("a[href='/segments/top_lost_value']")
    assert page.locator("h1").inner_text() != "Segments"
    assert page.locator("section.card table tbody tr").count() > 0

    # campaigns -> one campaign: funnel chart and holdout
    page.goto(server["url"] + "/campaigns")
    rows = page.locator("tbody tr")
    assert rows.count() >= 5
    page.click("a[href='/campaigns/winback_price']")
    page.wait_for_selector("#chart-funnel svg.main-svg")
    assert "Lift vs holdout" in page.locator(".kpis").inner_text()
    holdout = page.locator("section.card", has=page.locator("h2", has_text="Holdout")).inner_text()
    assert "Treatment" in holdout and re.search(r"Treatment\s+\d+", holdout)

    # a sent message: rendered HTML in a sandboxed frame that fetches nothing (no open pixel)
    page.locator("a[href^='/messages/']").first.click()
    assert heading(page).startswith("Message ")
    frame = page.frame_locator("iframe.email-frame")
    assert len(frame.locator("body").inner_text()) > 20
    assert page.locator("iframe.email-frame").get_attribute("sandbox") == ""

    # experiments, themes, customers, suppressions, admin
    for path, title in (("/experiments", "Experiments"), ("/themes", "Feedback themes"),
                        ("/suppressions", "Suppressions"), ("/admin", "Users and API keys")):
        page.goto(server["url"] + path)
        assert heading(page) == title, path
    page.wait_for_selector("text=API keys")
    page.goto(server["url"] + "/themes")
    page.wait_for_selector("#chart-themes svg.main-svg")
    page.goto(server["url"] + "/customers")
    page.fill("input[name=q]", "example")
    page.click("form.search button")
    page.locator("tbody a[href^='/customers/']").first.click()
    assert page.locator("h2", has_text="Campaigns").count() == 1

    # sign out
    page.click("text=Log out")
    page.wait_for_url(server["url"] + "/login")
    page.goto(server["url"] + "/")
    assert "/login" in page.url

    assert not errors, errors
    assert not [u for u in requests if "/o/" in u or "/c/" in u], "the dashboard never fires tracking"
    assert not local_only(server, requests), local_only(server, requests)


def test_marketer_pauses_and_resumes_a_campaign(context, server):
    page = context.new_page()
    login(page, server, "marketer")
    page.goto(server["url"] + "/campaigns/winback_feature")
    page.click("button:has-text('Pause')")
    assert "campaign winback_feature paused" in page.locator(".flash").inner_text()
    assert page.locator(".status").first.inner_text() == "paused"
    with server["app"].state.engine.connect() as conn:
        assert conn.execute(select(Campaign.status).where(Campaign.key == "winback_feature")).scalar_one() == "paused"
    page.click("button:has-text('Resume')")
    assert page.locator(".status").first.inner_text() == "active"
    assert page.locator("a[href='/admin']").count() == 0  # no admin page for a marketer


# --------------------------------------------------------------------------- recipient flows

def _messages(settings, wanted: str):
    root = settings.workspace / settings.delivery.maildir
    for path in sorted([*root.glob("new/*"), *root.glob("cur/*")]):
        msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        text = msg.get_body(("plain",)).get_content()
        links = {m.group(1): m.group(0) for m in LINK.finditer(text)}
        if wanted in links and str(msg["Subject"]).isascii():  # an English message: its pages are too
            yield msg, links


def _local(server, url: str) -> str:
    """The link as sent (the workspace's base_url) pointed at this test server."""
    parts = urlsplit(url)
    return server["url"] + parts.path + (f"?{parts.query}" if parts.query else "")


def test_recipient_clicks_unsubscribes_and_sees_preferences(context, server):
    settings, engine = server["settings"], server["app"].state.engine
    msg, links = next(_messages(settings, "c"))
    address = msg["To"].addresses[0].addr_spec.lower()
    assert {"c", "u", "p"} <= set(links)

    page = context.new_page()
    seen = []
    page.on("request", lambda r: seen.append(r))
    link = _local(server, links["c"])
    # the tracked link answers with a redirect to the product's site. Playwright's page.route does not
    # see redirected requests, and no host name resolves in this browser (see conftest), so the hop
    # to the outside is observed as a request and then fails here, without leaving the machine
    with pytest.raises(PlaywrightError, match="ERR_NAME_NOT_RESOLVED"):
        page.goto(link)
    hop = next(r for r in seen if r.redirected_from is not None and r.redirected_from.url == link)
    assert not hop.url.startswith(server["url"]) and urlsplit(hop.url).scheme in ("http", "https")
    assert hop.is_navigation_request()
    with engine.connect() as conn:
        clicks = conn.execute(select(TrackingEvent.kind, TrackingEvent.target).join(
            Customer, Customer.id == TrackingEvent.customer_id).where(
            TrackingEvent.kind == "click", Customer.email == address)).all()
    assert clicks and clicks[0].target == hop.url
    page.close()  # its error page is still loading

    page = context.new_page()
    page.goto(_local(server, links["u"]))
    assert page.locator("h1").inner_text() == "Unsubscribe"
    page.click("button[type=submit]")
    page.wait_for_selector("text=You are unsubscribed")
    with engine.connect() as conn:
        rows = conn.execute(select(Suppression.reason, Suppression.scope).where(Suppression.address == address)).all()
        opted_out = conn.execute(select(Customer.marketing_opt_out).where(Customer.email == address)).scalar()
    assert rows and all(r.reason == "unsubscribed" for r in rows), rows
    assert opted_out is True

    page.goto(_local(server, links["p"]))
    assert page.locator("h1").inner_text() == "Email preferences"
    assert "You are unsubscribed from all marketing emails" in page.content()

    # and the dashboard lists the suppression
    login(page, server, "viewer")
    page.goto(server["url"] + "/suppressions?q=" + address)
    assert address in page.locator("table").inner_text()


def test_recipient_answers_the_exit_survey(context, server):
    settings, engine = server["settings"], server["app"].state.engine
    msg, links = next(_messages(settings, "s"))
    page = context.new_page()
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(_local(server, links["s"]))
    assert page.locator("h1").inner_text() == "Why did you leave?"
    page.locator("input[name=main_reason]").first.check()
    page.fill("textarea[name=comment]", "Too pricey for a team of three <b>honestly</b>")
    page.click("button[type=submit]")
    page.wait_for_selector("text=Thank you for your feedback")
    address = msg["To"].addresses[0].addr_spec.lower()
    with engine.connect() as conn:
        row = conn.execute(select(SurveyResponse.reason, SurveyResponse.comment, SurveyResponse.message).join(
            Customer, Customer.id == SurveyResponse.customer_id).where(Customer.email == address)).one()
    assert row.reason and row.comment == "Too pricey for a team of three <b>honestly</b>"
    assert row.message == msg["Message-ID"]
    assert not local_only(server, requests)

    # the answer shows on the themes page, escaped
    login(page, server, "viewer")
    page.goto(server["url"] + "/themes")
    assert "Too pricey for a team of three <b>honestly</b>" in page.locator("ul.comments").inner_text()
