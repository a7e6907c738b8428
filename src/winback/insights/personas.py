"""Shop personas (DOMAIN.md, "Retention metrics and personas"): who a commerce customer is, in plain words.

:func:`persona_features` counts, per customer and up to ``as_of``, what they did in the shop
(one Ibis query run by the history backend); :func:`assign_personas` is the pure rule that turns
those counts into one persona and a short explanation. The rules, first match wins:

1. **repeat_buyer**: 2 or more purchases;
2. **one_time_high_aov** / **one_time_low_aov**: exactly 1 purchase; high when its value (the
   average order value) is at or above the threshold;
3. **cart_abandoner**: no purchase, but added something to a cart, started a checkout that was
   abandoned or declined (``incomplete``), or placed an order that never completed (canceled or
   pending);
4. **passive_browser**: no cart and no purchase, but viewed a product or came back (2+ sessions);
5. **bouncer**: at most one session and no product view: came and left without interacting. A
   customer with no recorded activity at all (e.g. a CRM record) is a bouncer too, and the
   explanation says so.

Counting rules and edge cases:

* a **purchase** is an order whose status is in ``purchase_statuses``, by default ``completed``
  and ``refunded``: a refunded order was still bought (the customer went all the way through
  checkout; the refund came later), so someone who bought twice and returned one item is a repeat
  buyer, and their AOV counts the refunded order's amount (``total_amount``, after discounts);
* ``canceled`` orders never became purchases and ``pending`` ones have not yet (the persona is
  recomputed when they complete): like every order whose status is not a purchase status they
  count as an unfinished order (``orders_unfinished``, rule 3);
* checkouts: ``abandoned`` (email given, never finished) and ``incomplete`` (payment declined)
  are counted separately; a checkout without ``customer_id`` is matched to the customer with the
  same email (case-insensitive) in the same source, and dropped when there is none;
* sessions: the larger of the ``session_start`` events (their ``count``) and the distinct
  ``session_id`` values of all events; product views and carts are the ``count`` sums of
  ``product_view`` / ``add_to_cart`` events;
* money stays in one currency: the AOV is computed in the customer's main currency (the one with
  the most purchases; ties go to the alphabetically first), ``orders`` counts purchases in every
  currency;
* the **high-AOV threshold** is, by default, the median AOV of the one-time buyers of the same
  source and currency (``high_aov_quantile=0.5``); pass ``high_aov_threshold`` (minor units, one
  number for every currency or a ``{currency: minor units}`` mapping) to fix it, e.g. 10,000 for
  $100.

Which customers: every customer of the commerce sources (``customers`` rows plus anyone with
orders, checkouts or events there). By default the commerce sources are those with at least one
order or one ``product_view`` / ``add_to_cart`` event; pass ``sources`` to choose.
"""

from __future__ import annotations

import datetime as dt
from typing import Mapping, Sequence

import ibis
import ibis.expr.types as ir
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

PERSONAS = ("bouncer", "passive_browser", "cart_abandoner", "one_time_low_aov", "one_time_high_aov", "repeat_buyer")
PURCHASE_STATUSES = ("completed", "refunded")
DEFAULT_HIGH_AOV_QUANTILE = 0.5

FEATURE_COLUMNS = ("sessions", "product_views", "add_to_cart", "checkouts_abandoned", "checkouts_incomplete",
                   "orders", "orders_refunded", "orders_unfinished")
KEY = ["source", "customer_id"]


def _instant(value: dt.datetime) -> ir.Value:
    if value.tzinfo is not None:
        value = value.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return ibis.literal(value, type="timestamp")


def _ones(condition: ir.BooleanValue) -> ir.IntegerValue:
    return ibis.ifelse(condition, ibis.literal(1, type="int64"), ibis.literal(0, type="int64"))


def commerce_sources(con) -> list[str]:
    """Sources with at least one order or one ``product_view`` / ``add_to_cart`` event."""
    orders = con.table("orders").select("source")
    pe = con.table("product_events")
    views = pe.filter(pe.event_type.isin(["product_view", "add_to_cart"])).select("source")
    found = _nullable(orders).union(_nullable(views), distinct=True).to_pyarrow().column("source").to_pylist()
    return sorted(s for s in found if s is not None)


def _nullable(t: ir.Table) -> ir.Table:
    """The same columns, all nullable (set operations need equal schemas; NOT NULL keys differ)."""
    return t.cast({name: dtype.copy(nullable=True) for name, dtype in t.schema().items()})


def _drop_right(t: ir.Table) -> ir.Table:
    return t.drop([c for c in t.columns if c.endswith("_right")])


def persona_features(con, as_of: dt.datetime, *, sources: Sequence[str] | None = None,
                     purchase_statuses: Sequence[str] = PURCHASE_STATUSES) -> pa.Table:
    """Per customer of the commerce sources, what they did up to ``as_of`` (module docstring).

    Columns: ``source, customer_id, currency`` (main purchase currency, null without purchases),
    ``sessions, product_views, add_to_cart, checkouts_abandoned, checkouts_incomplete, orders``
    (purchases), ``orders_refunded`` (purchases later refunded), ``orders_unfinished`` (orders that
    are not purchases: canceled or pending by default), ``average_order_value_minor`` (in
    ``currency``; null without purchases) and ``revenue_minor`` (completed, not refunded, in
    ``currency``). One query; sorted by source, customer.
    """
    srcs = list(commerce_sources(con) if sources is None else sources)
    if not srcs:
        return _empty_features()
    t = _instant(as_of)
    purchase = list(purchase_statuses)

    customers = con.table("customers")
    customers = customers.filter(customers.source.isin(srcs))

    pe = con.table("product_events")
    pe = pe.filter(pe.source.isin(srcs) & (pe.occurred_at <= t))
    n = pe["count"].fill_null(1).cast("int64")
    zero = ibis.literal(0, type="int64")
    events = pe.group_by(KEY).aggregate(
        _starts=ibis.ifelse(pe.event_type == "session_start", n, zero).sum(),
        _session_ids=pe.session_id.nunique(),
        product_views=ibis.ifelse(pe.event_type == "product_view", n, zero).sum(),
        add_to_cart=ibis.ifelse(pe.event_type == "add_to_cart", n, zero).sum(),
    )
    events = events.mutate(sessions=ibis.greatest(events._starts, events._session_ids.cast("int64")))
    events = events.drop("_starts", "_session_ids")

    ck = con.table("checkouts")
    ck = ck.filter(ck.source.isin(srcs) & (ck.started_at <= t) & ck.status.isin(["abandoned", "incomplete"]))
    known = ck.filter(ck.customer_id.notnull()).select("source", "customer_id", "checkout_id", "status")
    anonymous = ck.filter(ck.customer_id.isnull() & ck.email.notnull())
    by_email = customers.filter(customers.email.notnull()).select(
        _src=customers.source, _email=customers.email.lower(), _cid=customers.customer_id)
    matched = anonymous.join(by_email, (anonymous.source == by_email._src)
                             & (anonymous.email.lower() == by_email._email))
    matched = matched.group_by(["source", "checkout_id", "status"]).aggregate(customer_id=matched._cid.min())
    matched = matched.select("source", "customer_id", "checkout_id", "status")
    allck = _nullable(known).union(_nullable(matched))
    checkouts = allck.group_by(KEY).aggregate(
        checkouts_abandoned=_ones(allck.status == "abandoned").sum(),
        checkouts_incomplete=_ones(allck.status == "incomplete").sum(),
    )

    od = con.table("orders")
    od = od.filter(od.source.isin(srcs) & (od.ordered_at <= t))
    is_purchase = od.status.isin(purchase)
    status_counts = od.group_by(KEY).aggregate(
        orders=_ones(is_purchase).sum(),
        orders_refunded=_ones(is_purchase & (od.status == "refunded")).sum(),
        orders_unfinished=_ones(~is_purchase).sum(),
    )
    bought = od.filter(is_purchase)
    per_currency = bought.group_by([*KEY, "currency"]).aggregate(
        _n=bought.count(), _total=bought.total_amount.sum(),
        _revenue=ibis.ifelse(bought.status == "completed", bought.total_amount, zero).sum(),
    )
    ranked = per_currency.mutate(_rn=ibis.row_number().over(
        group_by=KEY, order_by=[ibis.desc(per_currency._n), per_currency.currency]))
    main = ranked.filter(ranked._rn == 0)
    main = main.select(*KEY, "currency", average_order_value_minor=(main._total / main._n).round().cast("int64"),
                       revenue_minor=main._revenue.cast("int64"))

    keys = _nullable(customers.select(*KEY))
    for part in (events, checkouts, status_counts):
        keys = keys.union(_nullable(part.select(*KEY)), distinct=True)
    out = keys.distinct()
    for part in (events, checkouts, status_counts, main):
        out = _drop_right(out.left_join(part, KEY))
    out = out.select(
        "source", "customer_id", "currency",
        *[out[c].fill_null(0).cast("int64").name(c) for c in FEATURE_COLUMNS],
        "average_order_value_minor", "revenue_minor",
    )
    return out.to_pyarrow().sort_by([("source", "ascending"), ("customer_id", "ascending")])


def _empty_features() -> pa.Table:
    columns = {"source": pa.string(), "customer_id": pa.string(), "currency": pa.string()}
    columns.update({c: pa.int64() for c in (*FEATURE_COLUMNS, "average_order_value_minor", "revenue_minor")})
    return pa.schema(columns).empty_table()


# ================================================================================ the rules (pure)

def _ints(table: pa.Table, name: str) -> np.ndarray:
    if name not in table.column_names:
        return np.zeros(table.num_rows, dtype=np.int64)
    return table.column(name).cast(pa.int64()).fill_null(0).to_numpy(zero_copy_only=False)


def _exponent(currency: str | None) -> int:
    if not currency:
        return 2
    try:
        from winback.kit.money import minor_unit_exponent

        return minor_unit_exponent(currency)
    except Exception:  # noqa: BLE001 - an unknown code still gets a readable amount
        return 2


def _format_money(amount_minor: float, currency: str | None, exp: int) -> str:
    text = f"{amount_minor / 10 ** exp:,.{exp}f}"
    return f"{text} {currency}" if currency else text


def _money_strings(amounts: np.ndarray, currency: np.ndarray, missing: str) -> pa.Array:
    """``1,234.50 USD`` per row (``missing`` where the amount is NaN); each distinct amount is
    formatted once per currency."""
    out = np.full(amounts.size, missing, dtype=object)
    ok = ~np.isnan(amounts)
    for cur in set(currency[ok].tolist()):
        sel = ok & (currency == cur)
        uniq, inverse = np.unique(amounts[sel], return_inverse=True)
        exp = _exponent(cur)
        out[sel] = np.array([_format_money(u, cur, exp) for u in uniq.tolist()], dtype=object)[inverse]
    return pa.array(out, pa.string())


def _explain(persona: np.ndarray, sessions, views, carts, abandoned, incomplete, orders, refunded, unfinished,
             aov: np.ndarray, threshold: np.ndarray, currency: np.ndarray) -> pa.Array:
    """The plain-words explanation of each row, assembled column-wise with Arrow string kernels."""
    def text(values: np.ndarray) -> pa.Array:
        return pa.array(values).cast(pa.string())

    def mask(values: np.ndarray) -> pa.Array:
        return pa.array(values)

    def join(*parts):
        return pc.binary_join_element_wise(*parts, "")

    def counted(count: np.ndarray, one: str, many: str):
        return join(text(count), " ", pc.if_else(mask(count == 1), one, many))

    money = _money_strings(aov, currency, "?")
    cut = _money_strings(threshold, currency, "none set")
    repeat = join(text(orders), " purchases, average order ", money,
                  pc.if_else(mask(refunded > 0), join(" (", text(refunded), " later refunded)."), "."))
    one_time = join("One purchase of ", money, ", ", pc.if_else(mask(persona == 4), "at or above", "below"),
                    " the high-value threshold (", cut, ")",
                    pc.if_else(mask(refunded > 0), ", later refunded.", "."))
    # each present part ends in ", "; the last one is trimmed (null_handling="skip" loses rows in Arrow)
    parts = pc.utf8_rtrim(join(
        pc.if_else(mask(carts > 0), join("added to cart ", counted(carts, "time", "times"), ", "), ""),
        pc.if_else(mask(abandoned > 0), join("abandoned ", counted(abandoned, "checkout", "checkouts"), ", "), ""),
        pc.if_else(mask(incomplete > 0), join("had ", counted(incomplete, "checkout", "checkouts"), " declined, "),
                   ""),
        pc.if_else(mask(unfinished > 0),
                   join("placed ", counted(unfinished, "order", "orders"), " that never completed, "), ""),
    ), characters=", ")
    cart = join("Never bought: ", parts, ".")
    browse = join("Browsed (", counted(sessions, "session", "sessions"), ", ",
                  counted(views, "product view", "product views"), ") but never added to cart or bought.")
    bounce = pc.if_else(mask(sessions == 0), "No recorded visit, product view, cart or purchase.",
                        "Visited once and left without viewing a product.")
    out = bounce
    for code, values in ((1, browse), (2, cart), (3, one_time), (4, one_time), (5, repeat)):
        out = pc.if_else(mask(persona == code), values, out)
    return out


def aov_thresholds(features: pa.Table, *, high_aov_threshold: int | Mapping[str, int] | None = None,
                   high_aov_quantile: float = DEFAULT_HIGH_AOV_QUANTILE) -> np.ndarray:
    """The high-AOV threshold (minor units) that applies to each row (NaN where none applies)."""
    n = features.num_rows
    currency = np.array(features.column("currency").to_pylist() if "currency" in features.column_names
                        else [None] * n, dtype=object)
    if high_aov_threshold is not None:
        if isinstance(high_aov_threshold, Mapping):
            return np.array([float(high_aov_threshold[c]) if c in high_aov_threshold else np.nan for c in currency])
        return np.full(n, float(high_aov_threshold))
    if not 0.0 <= high_aov_quantile <= 1.0:
        raise ValueError(f"high_aov_quantile must lie in [0, 1], got {high_aov_quantile}")
    orders = _ints(features, "orders")
    aov = features.column("average_order_value_minor").cast(pa.float64()).fill_null(np.nan).to_numpy(
        zero_copy_only=False)
    source = np.array(features.column("source").to_pylist(), dtype=object)
    out = np.full(n, np.nan)
    one_time = (orders == 1) & ~np.isnan(aov)
    groups = {(s, c) for s, c, o in zip(source, currency, one_time) if o}
    for s, c in sorted(groups, key=str):
        sel = (source == s) & (currency == c)
        values = aov[sel & one_time]
        out[sel] = float(np.quantile(values, high_aov_quantile, method="lower"))
    return out


def assign_personas(features: pa.Table, *, high_aov_threshold: int | Mapping[str, int] | None = None,
                    high_aov_quantile: float = DEFAULT_HIGH_AOV_QUANTILE) -> pa.Table:
    """One persona and a plain-words explanation per row of :func:`persona_features` (module docstring).

    Pure: no I/O. Returns ``source, customer_id, persona, explanation, aov_threshold_minor`` (the
    threshold that applied to one-time buyers, in their currency; null for everyone else).
    ``high_aov_quantile`` (default 0.5, the median) is used when no ``high_aov_threshold`` is given;
    the quantile is the ``"lower"`` one, i.e. an actual one-time buyer's AOV.
    """
    n = features.num_rows
    sessions = _ints(features, "sessions")
    views = _ints(features, "product_views")
    carts = _ints(features, "add_to_cart")
    abandoned = _ints(features, "checkouts_abandoned")
    incomplete = _ints(features, "checkouts_incomplete")
    orders = _ints(features, "orders")
    refunded = _ints(features, "orders_refunded")
    unfinished = _ints(features, "orders_unfinished")
    aov_col = features.column("average_order_value_minor").cast(pa.float64()).fill_null(np.nan)
    aov = aov_col.to_numpy(zero_copy_only=False)
    currency = features.column("currency").to_pylist() if "currency" in features.column_names else [None] * n
    threshold = aov_thresholds(features, high_aov_threshold=high_aov_threshold, high_aov_quantile=high_aov_quantile)

    persona = np.zeros(n, dtype=np.int64)  # bouncer
    browsed = (views > 0) | (sessions >= 2)
    tried = (carts > 0) | (abandoned > 0) | (incomplete > 0) | (unfinished > 0)
    persona[browsed] = 1
    persona[tried] = 2
    one = orders == 1
    high = one & ~np.isnan(threshold) & (np.nan_to_num(aov, nan=-1.0) >= threshold)
    persona[one] = 3
    persona[high] = 4
    persona[orders >= 2] = 5

    explanation = _explain(persona, sessions, views, carts, abandoned, incomplete, orders, refunded, unfinished,
                           aov, threshold, np.array(currency, dtype=object))

    shown = np.where((persona == 3) | (persona == 4), threshold, np.nan)
    return pa.table({
        "source": features.column("source"),
        "customer_id": features.column("customer_id"),
        "persona": pa.array(np.array(PERSONAS, dtype=object)[persona], pa.string()),
        "explanation": explanation,
        "aov_threshold_minor": pa.array(np.where(np.isnan(shown), 0, np.round(shown)).astype(np.int64),
                                        mask=np.isnan(shown)),
    })


__all__ = ["PERSONAS", "PURCHASE_STATUSES", "assign_personas", "aov_thresholds", "commerce_sources",
           "persona_features"]
