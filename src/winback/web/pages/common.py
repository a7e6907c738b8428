"""Shared pieces of the dashboard pages: rendering, filters, pagination and small SQL helpers.

Every value reaches the templates as data; Jinja2 autoescapes it (nothing user-supplied is ever
marked safe). Charts are Plotly figure JSON placed in ``<script type="application/json">`` blocks
(data, never executed) and drawn by ``/static/charts.js`` with the locally served plotly.min.js,
so the pages work offline and a strict Content-Security-Policy (no inline script, no remote
origin, no images but ``data:``) holds on every page.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import dataclass
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse
from sqlalchemy import func

from winback.kit.money import Money
from winback.web.auth import Principal
from winback.web.templating import templates

# No inline script, nothing from another origin; images only as data: URIs (a message preview must
# not fetch its open pixel, and frame-src 'none' stops a click inside the sandboxed preview from
# reaching the tracked-click endpoint). Plotly injects <style> elements, hence 'unsafe-inline' styles.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src data:; "
       "font-src 'self' data:; connect-src 'self'; frame-src 'none'; object-src 'none'; base-uri 'none'; "
       "form-action 'self'; frame-ancestors 'none'")

NAV = (
    ("overview", "/", "Overview"),
    ("churn", "/churn", "Churn"),
    ("at_risk", "/at-risk", "At risk"),
    ("segments", "/segments", "Segments"),
    ("campaigns", "/campaigns", "Campaigns"),
    ("dunning", "/dunning", "Dunning"),
    ("experiments", "/experiments", "Experiments"),
    ("themes", "/themes", "Themes"),
    ("customers", "/customers", "Customers"),
    ("suppressions", "/suppressions", "Suppressions"),
)


# ------------------------------------------------------------------------------------ filters

def money(minor, currency: str | None = None, locale: str = "en") -> str:
    if minor is None:
        return "-"
    try:
        return Money(int(round(minor)), (currency or "USD")).format(locale)
    except Exception:  # an unknown currency code in the data: show the raw amount
        return f"{int(minor)} {currency or ''}".strip()


def pct(value, digits: int = 1, *, ratio: bool = True) -> str:
    """``0.123`` -> ``12.3%`` (``ratio=False`` when the value already is a percentage)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value * (100 if ratio else 1):.{digits}f}%"


def pp(value, digits: int = 2) -> str:
    """A difference of two rates as signed percentage points: ``0.0213`` -> ``+2.13 pp``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value * 100:+.{digits}f} pp"


def num(value, digits: int = 0) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and math.isnan(value):
        return "-"
    return f"{value:,.{digits}f}"


def when(value) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.timezone.utc)
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def day(value) -> str:
    text = when(value)
    return text[:10] if text != "-" else text


def pvalue(value) -> str:
    if value is None:
        return "-"
    return "< 0.001" if value < 0.001 else f"{value:.3f}"


def label(value) -> str:
    """``missing_feature`` -> ``Missing feature``."""
    if value is None:
        return "-"
    text = str(value).replace("_", " ")
    return text[:1].upper() + text[1:]


templates.env.filters.update(money=money, pct=pct, pp=pp, num=num, when=when, day=day, pvalue=pvalue, label=label)


# ------------------------------------------------------------------------------------ pagination

@dataclass(frozen=True)
class Pager:
    page: int
    per_page: int
    total: int
    base: str
    params: tuple[tuple[str, str], ...] = ()

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.per_page

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.per_page))

    @property
    def first_row(self) -> int:
        return min(self.total, self.offset + 1)

    @property
    def last_row(self) -> int:
        return min(self.total, self.offset + self.per_page)

    def url(self, page: int) -> str:
        query = [(k, v) for k, v in self.params if v not in (None, "")] + [("page", str(page))]
        return f"{self.base}?{urlencode(query)}"


def pager(request: Request, total: int, *, per_page: int = 50, keep: tuple[str, ...] = ()) -> Pager:
    try:
        page = max(1, int(request.query_params.get("page", "1")))
    except ValueError:
        page = 1
    params = tuple((k, request.query_params.get(k, "")) for k in keep)
    p = Pager(page, per_page, int(total), request.url.path, params)
    if page > p.pages:
        p = Pager(p.pages, per_page, int(total), request.url.path, params)
    return p


# ------------------------------------------------------------------------------------ rendering

def render(request: Request, template: str, who: Principal, active: str | None = None, *,
           status_code: int = 200, **context) -> HTMLResponse:
    state = request.app.state
    flash = (request.query_params.get("done") or "")[:300] or None
    flash_error = (request.query_params.get("error") or "")[:300] or None
    response = templates.TemplateResponse(request, f"pages/{template}", {
        "who": who, "nav": NAV, "active": active, "now": state.clock.now(), "flash": flash, "flash_error": flash_error,
        "can_act": who.can("marketer"), "is_admin": who.can("admin"), **context}, status_code=status_code)
    response.headers["Content-Security-Policy"] = CSP
    response.headers["Cache-Control"] = "no-store"
    return response


def chart(fig, height: int = 320) -> str:
    """A Plotly figure as JSON text for a ``<script type="application/json">`` block.

    The JSON is made safe for that context: ``<``, ``>`` and ``&`` are written as ``\\u00XX``
    escapes, so no text in the data can close the script element."""
    import plotly.io as pio

    fig.update_layout(margin={"l": 50, "r": 20, "t": 40, "b": 40}, height=height, template="plotly_white",
                      font={"family": "system-ui, sans-serif", "size": 12})
    text = pio.to_json(fig, validate=False, pretty=False, remove_uids=True)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


# ------------------------------------------------------------------------------------ SQL helpers

def engine_of(request: Request):
    return request.app.state.engine


def bucket(conn, column, unit: str = "month"):
    """``YYYY-MM`` (or ``YYYY-MM-DD``) of a UTC timestamp column on SQLite and PostgreSQL."""
    if conn.dialect.name == "sqlite":
        return func.strftime("%Y-%m" if unit == "month" else "%Y-%m-%d", column)
    return func.to_char(column, "YYYY-MM" if unit == "month" else "YYYY-MM-DD")


def loads(text, default=None):
    if text in (None, ""):
        return default
    if not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except ValueError:
        return default


def like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
