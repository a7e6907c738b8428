"""An online shop: personas, BG/NBD repeat purchasing, carts, checkouts, sessions, tickets, surveys.

Repeat purchases follow the BG/NBD process (Fader, Hardie & Lee 2005, "Counting Your Customers
the Easy Way", Marketing Science 24(2)):

* while alive, customer *i* buys as a Poisson process with rate ``lambda_i ~ Gamma(r, alpha)``
  (shape ``r``, rate ``alpha``, time unit: weeks);
* after every repeat purchase the customer drops out with probability ``p_i ~ Beta(a, b)``;
* time runs from the first purchase to the observation end.

It is simulated exactly and without per-customer loops: ``N ~ Poisson(lambda T)`` purchases would
happen by the horizon, ``J ~ Geometric(p)`` is the purchase after which the customer drops out,
``x = min(J, N)`` repeat purchases are observed, and their times are the first ``x`` order
statistics of ``N`` uniforms on ``(0, T]``, drawn from exponential spacings
(``U_(k) = S_k / (S_x + Gamma(N - x + 1))``). The true ``lambda``, ``p`` and population
parameters are recorded so CLV models can be scored.

Non-buying personas (bouncers, passive browsers, cart abandoners) leave sessions, product views,
carts and abandoned or declined checkouts. Buyers are one-time (low or high AOV) or repeat.
"""

from __future__ import annotations


import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from winback.models.history import get_table
from winback.synth import truth
from winback.synth.arrays import (
    DAY, HOUR, MINUTE, NA, START, WEEK, build_table, choice, choice_rows, digits_width, expand, ids, join,
    last_row_of,
    stream, take,
)
from winback.synth.people import make_people, opted_out_at, signup_times
from winback.synth.support import TOPIC, ticket_table
from winback.synth.texts import LANGUAGES, SHOP_COMPETITORS, SHOP_REASON_TEXTS, TextPool
from winback.synth.truth import REASONS

TABLES = ("customers", "orders", "order_items", "checkouts", "product_events", "tickets", "survey_responses")
PERSONAS = ("bouncer", "passive_browser", "cart_abandoner", "one_time_low_aov", "one_time_high_aov", "repeat_buyer")
CURRENCY = "USD"

# BG/NBD population parameters (time unit: week)
BGNBD = {"r": 0.4, "alpha": 4.0, "a": 1.2, "b": 2.4}
HIGH_AOV = 10_000  # one-time buyers whose order is $100 or more are "high AOV"

CATEGORIES = ("apparel", "electronics", "home", "beauty", "books", "toys", "grocery", "sports")
CATEGORY_WEIGHTS = (0.22, 0.12, 0.15, 0.14, 0.10, 0.08, 0.10, 0.09)
CATEGORY_MEDIAN = (3500, 12000, 4500, 2500, 1800, 3000, 1200, 5000)  # cents
PRODUCT_WORDS = {
    "apparel": (("Classic", "Organic Cotton", "Slim-Fit", "Oversized", "Linen", "Merino", "Vintage", "Everyday"),
                ("T-Shirt", "Hoodie", "Jeans", "Dress", "Jacket", "Sweater", "Shorts", "Scarf")),
    "electronics": (("Wireless", "Compact", "Smart", "Portable", "Noise-Cancelling", "4K", "Bluetooth", "USB-C"),
                    ("Earbuds", "Speaker", "Charger", "Webcam", "Headphones", "Keyboard", "Monitor", "Power Bank")),
    "home": (("Ceramic", "Bamboo", "Cast-Iron", "Linen", "Scented", "Minimalist", "Handmade", "Stoneware"),
             ("Mug Set", "Cutting Board", "Skillet", "Throw Blanket", "Candle", "Vase", "Lamp", "Storage Box")),
    "beauty": (("Hydrating", "Vitamin C", "Gentle", "Matte", "Overnight", "Mineral", "Rose", "Clarifying"),
               ("Serum", "Moisturizer", "Cleanser", "Lipstick", "Face Mask", "Sunscreen", "Toner", "Shampoo")),
    "books": (("The Little Book of", "A Field Guide to", "The Art of", "Everyday", "A Short History of",
               "The Joy of", "Notes on", "Slow"),
              ("Baking", "Tea", "Sleep", "Hiking", "Gardening", "Design", "Mathematics", "Travel")),
    "toys": (("Wooden", "Magnetic", "Plush", "Remote-Control", "Glow-in-the-Dark", "Musical", "Stacking", "Puzzle"),
             ("Train Set", "Building Blocks", "Bear", "Car", "Stars", "Xylophone", "Rings", "Cube")),
    "grocery": (("Organic", "Single-Origin", "Cold-Pressed", "Whole-Grain", "Sea-Salt", "Raw", "Roasted", "Spiced"),
                ("Coffee Beans", "Olive Oil", "Granola", "Pasta", "Crackers", "Honey", "Almonds", "Tea")),
    "sports": (("Lightweight", "Pro", "Adjustable", "Non-Slip", "Insulated", "Reflective", "Foldable", "Trail"),
               ("Yoga Mat", "Dumbbells", "Water Bottle", "Running Shoes", "Resistance Bands", "Backpack",
                "Jump Rope", "Cap")),
}
PER_CATEGORY = 64
CHANNELS = ("web", "ios", "android", "social")
COUPONS = ("WELCOME10", "COMEBACK20", "HOLIDAY25", "SAVE15")
COUPON_PCT = np.array([0.10, 0.20, 0.25, 0.15])
SOFT_CODES = ("insufficient_funds", "do_not_honor", "generic_decline", "try_again_later", "processing_error")
HARD_CODES = ("expired_card", "incorrect_number", "lost_card", "stolen_card", "fraudulent", "do_not_try_again")
DECLINE_CODES = SOFT_CODES + HARD_CODES
DECLINE_WEIGHTS = (0.32, 0.14, 0.12, 0.04, 0.04, 0.12, 0.10, 0.03, 0.02, 0.03, 0.04)
CANCEL_CODES = ("too_expensive", "missing_features", "too_complex", "customer_service", "switched_service",
                "unused", "low_quality", "other")
STATED = np.array([
    [0, 0, 0, 0, 0, 0, 0, 1],
    [1, 0, 0, 0, 0, 0, 0, 0],
    [0, 1, 0, 0, 0, 0, 0, 0],
    [0, 0, 0.7, 0, 0, 0, 0.3, 0],
    [0, 0, 0, 0.85, 0, 0, 0.15, 0],
    [0, 0, 0, 0, 1, 0, 0, 0],
    [0, 0, 0, 0, 0, 0.6, 0, 0.4],
])
RETURN_CHOICES = ("lower_price", "products_available", "easier_checkout", "better_service", "better_than_alternative",
                  "nothing")
REASON_WEIGHTS = (0.30, 0.07, 0.07, 0.12, 0.22, 0.22)  # price, missing_feature (assortment), usability, support,
# competitor, other
SHOP_TEXTS = TextPool(SHOP_REASON_TEXTS, SHOP_COMPETITORS)


def _catalog(rng: np.random.Generator):
    names, cats, prices = [], [], []
    for c, cat in enumerate(CATEGORIES):
        adjectives, nouns = PRODUCT_WORDS[cat]
        combos = [f"{a} {b}" for a in adjectives for b in nouns][:PER_CATEGORY]
        p = rng.lognormal(np.log(CATEGORY_MEDIAN[c]), 0.55, PER_CATEGORY)
        p = np.maximum(np.round(p / 100) * 100 - 1, 99).astype(np.int64)
        order = np.argsort(p, kind="stable")
        names.extend(combos[i] for i in order)  # names follow their price rank within the category
        cats.extend([c] * PER_CATEGORY)
        prices.extend(p[order])
    return np.array(cats), np.array(prices, dtype=np.int64), pa.array(names, type=pa.string())


def build(n: int, seed: int, horizon: int, progress=None, emit_table=None) -> tuple[dict[str, pa.Table], pa.Table,
                                                                                  dict]:
    """Simulate ``n`` shop customers; returns (tables, ground truth, summary facts).

    ``emit_table(name, table)``, when given, receives each table as soon as it is final.
    """
    H = horizon
    tables: dict[str, pa.Table] = {}

    def emit(name: str, table: pa.Table) -> None:
        tables[name] = table
        if emit_table:
            emit_table(name, table)

    def rng(name: str) -> np.random.Generator:
        return stream(seed, "ecommerce." + name)

    def say(message: str) -> None:
        if progress:
            progress(message)

    width = digits_width(n)
    say("ecommerce: customers")
    people = make_people(rng("people"), n, width, companies_share=0.0, attributes="shop")
    t0 = signup_times(rng("signup"), n, START + DAY, H - 2 * HOUR, growth=1.0)
    g = rng("personas")
    intent = choice(g, n, [0.15, 0.15, 0.12, 0.58])  # bouncer, browser, cart abandoner, buyer
    spend = g.random(n)
    fav = choice(g, n, CATEGORY_WEIGHTS)
    cat_of, price_of, product_names = _catalog(rng("catalog"))
    product_ids = ids("prd_", np.arange(1, cat_of.size + 1), 4)

    # ------------------------------------------------------------------ BG/NBD purchasing
    say("ecommerce: purchases")
    g = rng("bgnbd")
    buyers = np.nonzero(intent == 3)[0]
    nb = buyers.size
    lam = g.gamma(BGNBD["r"], 1.0 / BGNBD["alpha"], nb)  # purchases per week while alive
    p_drop = g.beta(BGNBD["a"], BGNBD["b"], nb)
    t1 = np.minimum(t0[buyers] + g.integers(3 * MINUTE, 40 * MINUTE, nb), H - HOUR)
    span = H - t1
    n_pois = g.poisson(lam * span / WEEK)
    J = g.geometric(np.maximum(p_drop, 1e-9))
    x = np.minimum(J, n_pois)
    dead = J <= n_pois
    rep_parent, rep_pos = expand(x)
    e = g.exponential(1.0, rep_parent.size)
    csum = np.cumsum(e)
    starts = np.cumsum(x) - x
    before = np.concatenate([[0.0], csum])[starts]  # running total before each group
    s_k = csum - before[rep_parent]
    s_x = np.zeros(nb)
    ends = starts + x - 1
    has_rep = x > 0
    s_x[has_rep] = csum[ends[has_rep]] - before[has_rep]
    tail = g.gamma(np.maximum(n_pois - x + 1, 1).astype(np.float64))
    u = s_k / (s_x[rep_parent] + tail[rep_parent])
    rep_time = t1[rep_parent] + np.minimum((u * span[rep_parent]).astype(np.int64), span[rep_parent])
    # all orders
    o_buyer = np.concatenate([np.arange(nb), rep_parent])
    o_time = np.concatenate([t1, rep_time])
    o_seq = np.concatenate([np.zeros(nb, np.int64), rep_pos + 1])
    order = np.lexsort((o_seq, o_buyer, o_time))
    o_buyer, o_time, o_seq = o_buyer[order], o_time[order], o_seq[order]
    o_cust = buyers[o_buyer]
    n_orders = o_time.size
    last_time = np.zeros(nb, dtype=np.int64)
    np.maximum.at(last_time, o_buyer, o_time)
    # previous order time per order (for come-back coupons)
    by_cust = np.lexsort((o_time, o_buyer))
    prev = np.full(n_orders, NA, dtype=np.int64)
    same = np.zeros(n_orders, dtype=bool)
    same[1:] = o_buyer[by_cust][1:] == o_buyer[by_cust][:-1]
    shifted = np.full(n_orders, NA, dtype=np.int64)
    shifted[1:] = o_time[by_cust][:-1]
    prev[by_cust] = np.where(same, shifted, NA)

    # reasons for buyers who dropped out
    g = rng("reasons")
    reason_b = np.where(dead, 1 + choice(g, nb, REASON_WEIGHTS), 0)

    # ------------------------------------------------------------------ items and order totals
    g = rng("items")
    n_items = 1 + np.minimum(g.poisson(0.7, n_orders), 5)
    i_order, i_line = expand(n_items)
    i_cust = o_cust[i_order]
    cat = np.where(g.random(i_order.size) < 0.6, fav[i_cust], choice(g, i_order.size, CATEGORY_WEIGHTS))
    q = np.clip(spend[i_cust] + g.normal(0, 0.18, i_order.size), 0, 0.999)
    product = cat * PER_CATEGORY + (q * PER_CATEGORY).astype(np.int64)
    qty = 1 + choice(g, i_order.size, [0.85, 0.12, 0.03])
    unit = price_of[product]
    subtotal = np.bincount(i_order, weights=unit * qty, minlength=n_orders).astype(np.int64)
    # coupons
    month_day = _month_day(o_time)
    holiday = (month_day >= 1120)
    comeback = (prev != NA) & (o_time - prev > 60 * DAY)
    coupon = np.full(n_orders, -1, dtype=np.int64)
    roll = g.random(n_orders)
    coupon = np.where((o_seq == 0) & (roll < 0.20), 0, coupon)
    coupon = np.where((coupon < 0) & comeback & (roll < 0.25), 1, coupon)
    coupon = np.where((coupon < 0) & holiday & (roll < 0.15), 2, coupon)
    coupon = np.where((coupon < 0) & (roll > 0.94), 3, coupon)
    discount = np.where(coupon >= 0, np.rint(subtotal * COUPON_PCT[np.maximum(coupon, 0)]), 0).astype(np.int64)
    total = subtotal - discount
    # status: support churners often had their last order refunded
    is_last = o_time == last_time[o_buyer]
    support_last = is_last & (reason_b[o_buyer] == 4)
    status = choice(g, n_orders, [0.965, 0.025, 0.0, 0.01])  # completed, refunded, pending, canceled
    status = np.where(support_last & (g.random(n_orders) < 0.5), 1, status)
    channel = choice(g, n_orders, [0.5, 0.25, 0.2, 0.05])
    order_id = ids("ord_", np.arange(1, n_orders + 1), digits_width(max(n_orders, 1), 7))

    # ------------------------------------------------------------------ personas
    persona = np.zeros(n, dtype=np.int64)
    persona[intent == 1] = 1
    persona[intent == 2] = 2
    first_total = total[o_seq == 0]
    first_buyer = o_buyer[o_seq == 0]
    ft = np.zeros(nb, dtype=np.int64)
    ft[first_buyer] = first_total
    persona[buyers] = np.where(x > 0, 5, np.where(ft >= HIGH_AOV, 4, 3))

    # ------------------------------------------------------------------ checkouts
    say("ecommerce: checkouts and sessions")
    g = rng("checkouts")
    ck = []  # (cust, started, status, amount, items, code, completed_at, order index, has its own session)
    c_start = o_time - g.integers(1 * MINUTE, 15 * MINUTE, n_orders)
    ck.append((o_cust, c_start, np.zeros(n_orders, np.int64), total, n_items, np.full(n_orders, -1), o_time,
               np.arange(n_orders), np.ones(n_orders, dtype=bool)))
    dec = np.nonzero(g.random(n_orders) < 0.04)[0]
    ck.append((o_cust[dec], c_start[dec] - g.integers(MINUTE, 30 * MINUTE, dec.size), np.full(dec.size, 2),
               total[dec], n_items[dec], choice(g, dec.size, DECLINE_WEIGHTS), np.full(dec.size, NA),
               np.full(dec.size, -1), np.zeros(dec.size, dtype=bool)))  # same session as the order after it
    # cart abandoners: one or two unfinished checkouts; a quarter were declined instead
    ca = np.nonzero(intent == 2)[0]
    declined_c = np.zeros(n, dtype=bool)
    declined_c[ca] = g.random(ca.size) < 0.25
    first_at = t0[ca] + g.integers(3 * MINUTE, 30 * MINUTE, ca.size)
    again = g.random(ca.size) < 0.3
    again_at = t0[ca] + (g.uniform(1, 20, ca.size) * DAY).astype(np.int64)
    again &= again_at <= H
    cart_cust = np.concatenate([ca, ca[again]])
    cart_at = np.minimum(np.concatenate([first_at, again_at[again]]), H)
    # extra abandoned checkouts by some buyers
    xb = np.nonzero(g.random(nb) < 0.10)[0]
    xb_at = t1[xb] + (g.random(xb.size) * (H - t1[xb])).astype(np.int64)
    cart_cust = np.concatenate([cart_cust, buyers[xb]])
    cart_at = np.concatenate([cart_at, xb_at])
    cart_items = 1 + choice(g, cart_cust.size, [0.6, 0.3, 0.1])
    cart_amount = np.zeros(cart_cust.size, dtype=np.int64)
    for k in range(3):
        pick = fav[cart_cust] * PER_CATEGORY + (np.clip(spend[cart_cust] + g.normal(0, 0.2, cart_cust.size), 0, 0.999)
                                                * PER_CATEGORY).astype(np.int64)
        cart_amount += np.where(cart_items > k, price_of[pick], 0)
    cart_status = np.where(declined_c[cart_cust] & (np.arange(cart_cust.size) < ca.size), 2, 1)
    cart_code = np.where(cart_status == 2, choice(g, cart_cust.size, DECLINE_WEIGHTS), -1)
    ck.append((cart_cust, cart_at, cart_status, cart_amount, cart_items, cart_code, np.full(cart_cust.size, NA),
               np.full(cart_cust.size, -1), np.ones(cart_cust.size, dtype=bool)))
    k_cust, k_start, k_status, k_amount, k_items, k_code, k_done, k_order, k_own = (
        np.concatenate([c[i] for c in ck]) for i in range(9))
    k_start = np.maximum(k_start, START)
    ko = np.lexsort((k_cust, k_start))
    k_cust, k_start, k_status, k_amount, k_items, k_code, k_done, k_order, k_own = (
        a[ko] for a in (k_cust, k_start, k_status, k_amount, k_items, k_code, k_done, k_order, k_own))
    r = k_cust.size
    checkouts = build_table(get_table("checkouts"), r, {
        "checkout_id": ids("cs_", np.arange(1, r + 1), digits_width(max(r, 1), 7)),
        "customer_id": people.customer_id.take(pa.array(k_cust)),
        "email": people.email.take(pa.array(k_cust)),
        "started_at": k_start,
        "status": take(("completed", "abandoned", "incomplete"), k_status),
        "amount": k_amount,
        "currency": CURRENCY,
        "items_count": k_items.astype(np.int64),
        "decline_code": take(DECLINE_CODES, np.maximum(k_code, 0), mask=k_code < 0),
        "completed_at": k_done,
        "order_id": order_id.take(pa.array(k_order, mask=k_order < 0)),
    })
    emit("checkouts", checkouts)

    # ------------------------------------------------------------------ sessions and product events
    g = rng("sessions")
    sess = []  # (cust, at, views, carts, category)
    bo = np.nonzero(intent == 0)[0]
    sess.append((bo, t0[bo], np.zeros(bo.size, np.int64), np.zeros(bo.size, np.int64), fav[bo]))
    br = np.nonzero(intent == 1)[0]
    k_br = 1 + g.poisson(1.5, br.size)
    bp, bpos = expand(k_br)
    window = np.minimum(60 * DAY, H - t0[br])
    b_at = t0[br][bp] + np.where(bpos == 0, 0, (g.random(bp.size) * window[bp]).astype(np.int64))
    cat_b = np.where(g.random(bp.size) < 0.6, fav[br][bp], choice(g, bp.size, CATEGORY_WEIGHTS))
    sess.append((br[bp], b_at, 1 + g.poisson(4, bp.size), np.zeros(bp.size, np.int64), cat_b))
    # a session before every checkout (orders, carts)
    before_ck = k_start - g.integers(2 * MINUTE, 25 * MINUTE, r)
    keep = k_own
    cat_k = np.where(g.random(r) < 0.7, fav[k_cust], choice(g, r, CATEGORY_WEIGHTS))
    sess.append((k_cust[keep], before_ck[keep], 1 + g.poisson(5, int(keep.sum())), k_items[keep], cat_k[keep]))
    s_cust, s_at, s_views, s_carts, s_cat = (np.concatenate([x_[i] for x_ in sess]) for i in range(5))
    s_at = np.clip(s_at, START, H)
    so = np.lexsort((s_cust, s_at))
    s_cust, s_at, s_views, s_carts, s_cat = (a[so] for a in (s_cust, s_at, s_views, s_carts, s_cat))
    n_s = s_cust.size
    session_id = ids("ses_", np.arange(1, n_s + 1), digits_width(max(n_s, 1), 7))
    rows_per = 1 + (s_views > 0) + (s_carts > 0)
    ep, epos = expand(rows_per)
    etype = np.where(epos == 0, 0, np.where((epos == 1) & (s_views[ep] > 0), 1, 2))
    e_count = np.where(etype == 0, 1, np.where(etype == 1, s_views[ep], s_carts[ep])).astype(np.int64)
    e_at = np.minimum(s_at[ep] + np.where(etype == 0, 0, np.where(etype == 1, 30, 300 + 60 * epos)), H)
    device = take(("web", "ios", "android"), choice(g, n_s, [0.55, 0.25, 0.2]))
    cat_text = take(CATEGORIES, s_cat)
    props_session = join('{"channel": "', device, '"}')
    props_cat = join('{"category": "', cat_text, '"}')
    props = pc.if_else(pa.array(etype == 0), props_session.take(pa.array(ep)), props_cat.take(pa.array(ep)))
    n_e = ep.size
    events = build_table(get_table("product_events"), n_e, {
        "event_id": ids("evt_", np.arange(1, n_e + 1), digits_width(max(n_e, 1), 8)),
        "customer_id": people.customer_id.take(pa.array(s_cust[ep])),
        "occurred_at": e_at,
        "event_type": take(("session_start", "product_view", "add_to_cart"), etype),
        "session_id": session_id.take(pa.array(ep)),
        "count": e_count,
        "properties": props,
    })
    emit("product_events", events)
    created_at = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(created_at, s_cust, s_at)
    np.minimum.at(created_at, k_cust, k_start)
    created_at = np.where(created_at == np.iinfo(np.int64).max, t0, created_at)

    # ------------------------------------------------------------------ orders and items tables
    orders = build_table(get_table("orders"), n_orders, {
        "order_id": order_id,
        "customer_id": people.customer_id.take(pa.array(o_cust)),
        "ordered_at": o_time,
        "status": take(("completed", "refunded", "pending", "canceled"), status),
        "total_amount": total,
        "discount_amount": discount,
        "currency": CURRENCY,
        "coupon_code": take(COUPONS, np.maximum(coupon, 0), mask=coupon < 0),
        "channel": take(CHANNELS, channel),
    })
    emit("orders", orders)
    n_i = i_order.size
    items = build_table(get_table("order_items"), n_i, {
        "order_id": order_id.take(pa.array(i_order)),
        "line_number": (i_line + 1).astype(np.int64),
        "product_id": product_ids.take(pa.array(product)),
        "product_name": product_names.take(pa.array(product)),
        "category": take(CATEGORIES, cat),
        "quantity": qty.astype(np.int64),
        "unit_price": unit,
        "currency": CURRENCY,
    })
    emit("order_items", items)

    # ------------------------------------------------------------------ tickets
    say("ecommerce: tickets and surveys")
    g = rng("tickets")
    shop_topics = np.array([TOPIC[t] for t in ("delivery", "returns", "refund", "product_question", "payment",
                                               "account")])
    tk = np.nonzero(g.random(n_orders) < 0.05)[0]
    t_open = o_time[tk] + (g.uniform(0.5, 10, tk.size) * DAY).astype(np.int64)
    t_topic = shop_topics[choice(g, tk.size, [0.35, 0.25, 0.15, 0.15, 0.05, 0.05])]
    t_cust = o_cust[tk]
    t_unhappy = np.zeros(tk.size, dtype=bool)
    sb = np.nonzero(reason_b == 4)[0]
    k_sup = 1 + g.poisson(0.8, sb.size)
    sp, _ = expand(k_sup)
    s_open = last_time[sb][sp] + (g.uniform(1, 20, sp.size) * DAY).astype(np.int64)
    s_topic = shop_topics[choice(g, sp.size, [0.45, 0.25, 0.3, 0, 0, 0])]
    ub = np.nonzero((reason_b == 3) & (g.random(nb) < 0.3))[0]
    u_open = last_time[ub] + (g.uniform(0.1, 5, ub.size) * DAY).astype(np.int64)
    t_open = np.concatenate([t_open, s_open, u_open])
    t_topic = np.concatenate([t_topic, s_topic, np.full(ub.size, TOPIC["payment"])])
    t_cust = np.concatenate([t_cust, buyers[sb][sp], buyers[ub]])
    t_unhappy = np.concatenate([t_unhappy, np.ones(sp.size, dtype=bool), np.zeros(ub.size, dtype=bool)])
    ok = t_open <= H
    t_open, t_topic, t_cust, t_unhappy = t_open[ok], t_topic[ok], t_cust[ok], t_unhappy[ok]
    to = np.lexsort((t_cust, t_open))
    emit("tickets", ticket_table(g, t_open[to], t_topic[to], t_unhappy[to], t_cust[to], None, people, H))

    # ------------------------------------------------------------------ surveys
    g = rng("surveys")
    lang_b = people.locale[buyers]
    rr = reason_b
    code = choice_rows(g, STATED, rr)
    code = np.where(g.random(nb) < 0.10, (code + 1 + g.integers(0, 7, nb)) % 8, code)
    responded = last_time + (g.uniform(60, 150, nb) * DAY).astype(np.int64)
    ex = np.nonzero(dead & (g.random(nb) < 0.25) & (responded <= H))[0]
    text_reason = np.where(g.random(nb) < 0.05, 1 + g.integers(0, 6, nb), np.clip(rr, 1, 6))
    text = SHOP_TEXTS.draw(g, text_reason - 1, lang_b)
    comment = ex[g.random(ex.size) < 0.8]
    back = ex[g.random(ex.size) < 0.5]
    back_choice = np.where(g.random(back.size) < 0.15, g.integers(0, 6, back.size), np.clip(rr[back], 1, 6) - 1)
    cs = np.nonzero(g.random(n_orders) < 0.08)[0]
    cs_at = o_time[cs] + (g.uniform(2, 14, cs.size) * DAY).astype(np.int64)
    sad = support_last[cs]
    cs_score = np.where(sad, 1 + choice(g, cs.size, [0.5, 0.3, 0.15, 0.05, 0.0]),
                        1 + choice(g, cs.size, [0.03, 0.04, 0.10, 0.33, 0.50]))
    okc = cs_at <= H
    cs, cs_at, cs_score = cs[okc], cs_at[okc], cs_score[okc]
    q_cust = np.concatenate([buyers[ex], buyers[comment], buyers[back], o_cust[cs]])
    q_time = np.concatenate([responded[ex], responded[comment] + 30, responded[back] + 60, cs_at])
    q_kind = np.concatenate([np.zeros(ex.size, np.int64), np.ones(comment.size, np.int64), np.full(back.size, 2),
                             np.full(cs.size, 3)])
    choice_col = pa.concat_arrays([take(CANCEL_CODES, code[ex]), pa.nulls(comment.size, pa.string()),
                                   take(RETURN_CHOICES, back_choice), pa.nulls(cs.size, pa.string())])
    text_col = pa.concat_arrays([pa.nulls(ex.size, pa.string()), text.take(pa.array(comment)),
                                 pa.nulls(back.size + cs.size, pa.string())])
    score_col = np.concatenate([np.zeros(ex.size + comment.size + back.size, np.int64), cs_score])
    qo = np.lexsort((q_kind, q_cust, q_time))
    r_q = qo.size
    surveys = build_table(get_table("survey_responses"), r_q, {
        "response_id": ids("sr_", np.arange(1, r_q + 1), digits_width(max(r_q, 1))),
        "customer_id": people.customer_id.take(pa.array(q_cust[qo])),
        "responded_at": q_time[qo],
        "survey": take(("exit", "exit", "exit", "csat"), q_kind[qo]),
        "question_id": take(("main_reason", "comment", "would_return_if", "order_satisfaction"), q_kind[qo]),
        "choice": choice_col.take(pa.array(qo)),
        "text": text_col.take(pa.array(qo)),
        "score": (score_col[qo], q_kind[qo] != 3),
        "language": take(LANGUAGES, people.locale[q_cust[qo]]),
    })
    emit("survey_responses", surveys)

    # ------------------------------------------------------------------ customers
    cols = dict(people.columns)
    cols["created_at"] = created_at
    cols["marketing_basis"] = take(("consent", "soft_opt_in", "none"),
                                   np.where(intent == 3, choice(g, n, [0.4, 0.5, 0.1]), choice(g, n, [0.5, 0.0, 0.5])))
    cols["opted_out_at"] = opted_out_at(rng("optout"), people.opt_out, created_at, H)
    emit("customers", build_table(get_table("customers"), n, cols))

    # ------------------------------------------------------------------ ground truth
    say("ecommerce: ground truth")
    reason = np.zeros(n, dtype=np.int64)
    reason[buyers] = reason_b
    is_dead = np.zeros(n, dtype=bool)
    is_dead[buyers] = dead
    churned_at = np.full(n, NA, dtype=np.int64)
    churned_at[buyers] = np.where(dead, last_time, NA)
    comment_reason = np.zeros(n, dtype=np.int64)  # the reason the lapsed-survey comment expresses
    comment_reason[buyers[comment]] = text_reason[comment]
    rate = np.zeros(n)
    rate[buyers] = lam
    drop = np.full(n, np.nan)
    drop[buyers] = p_drop
    spent = np.bincount(o_cust, weights=np.where(status == 0, total, 0), minlength=n).astype(np.int64)
    count = np.bincount(o_cust, minlength=n).astype(np.int64)
    last_seen = np.full(n, NA, dtype=np.int64)
    np.maximum.at(last_seen, s_cust, s_at)
    last_active = np.where(is_dead, churned_at, last_seen)
    months_since = (H - last_active) / (30.44 * DAY)
    spend_pct = np.zeros(n)
    spend_pct[count > 0] = _pct(spent[count > 0])
    p = truth.shop_p_return(reason, persona, is_dead, rate, spend_pct, months_since, declined_c, PERSONAS)
    # category of the last line of the last order
    io = np.lexsort((i_line, o_time[i_order]))
    last_row = last_row_of(i_cust[io], n)
    last_cat = np.where(last_row >= 0, cat[io][np.maximum(last_row, 0)], -1)
    buyer_mask = np.zeros(n, dtype=bool)
    buyer_mask[buyers] = True
    columns = {
        "customer_id": people.customer_id,
        "churned": pa.array(is_dead),
        "churned_at": pa.array(np.where(is_dead, churned_at, 0) * 1_000_000, mask=~is_dead).view(
            pa.timestamp("us", tz="UTC")),
        "true_reason": take(("",) + REASONS, reason, mask=reason == 0),
        "persona": take(PERSONAS, persona),
        "requested_feature": pa.nulls(n, pa.string()),
    }
    columns.update({k: pa.array(v) for k, v in p.items()})
    columns.update({
        "purchase_rate_per_week": pa.array(rate, mask=~buyer_mask),
        "dropout_probability": pa.array(drop, mask=~buyer_mask),
        "orders": pa.array(count),
        "total_spent": pa.array(spent),
        "favourite_category": take(CATEGORIES, fav),
        "last_category": take(CATEGORIES, np.maximum(last_cat, 0), mask=last_cat < 0),
        "declined_at_checkout": pa.array(declined_c),
        "comment_reason": take(("",) + REASONS, comment_reason, mask=comment_reason == 0),
    })
    gt = pa.table(columns)

    # ------------------------------------------------------------------ summary
    observed = t1 <= H - 180 * DAY
    quick = dead & (last_time - t1 <= 100 * DAY)
    quiet = last_time - t1 <= 100 * DAY
    status_names = ("completed", "abandoned", "incomplete")
    facts = {
        "bgnbd": {**BGNBD, "time_unit": "week",
                  "mean_rate_per_week": round(float(lam.mean()), 4) if nb else None,
                  "mean_dropout_probability": round(float(p_drop.mean()), 4) if nb else None,
                  "note": "all orders (any status) are purchases of the process; time starts at the first order"},
        "personas": {name: int((persona == i).sum()) for i, name in enumerate(PERSONAS)},
        "buyers": int(nb),
        "buyers_dropped_out": int(dead.sum()),
        "churned": int(dead.sum()),
        "reason_mix": {name: int((reason == i + 1).sum()) for i, name in enumerate(REASONS) if name != "involuntary"},
        "orders": int(n_orders),
        "revenue": int(spent.sum()),
        "average_order_value": int(total.mean()) if n_orders else 0,
        "stopped_within_3_months_share": round(float(quick[observed].mean()), 4) if observed.any() else None,
        "no_order_after_first_3_months_share": round(float(quiet[observed].mean()), 4) if observed.any() else None,
        "checkouts": {name: int((k_status == i).sum()) for i, name in enumerate(status_names)},
        "cart_abandoners_declined": int(declined_c.sum()),
    }
    return {name: tables[name] for name in TABLES}, gt, facts


def _pct(values: np.ndarray) -> np.ndarray:
    ranks = np.empty(values.size, dtype=np.float64)
    ranks[np.argsort(values, kind="stable")] = np.arange(values.size)
    return ranks / max(values.size - 1, 1)


def _month_day(sec: np.ndarray) -> np.ndarray:
    """MMDD of each instant (e.g. 1120 for 20 November)."""
    d = np.asarray(sec, dtype=np.int64).astype("datetime64[s]").astype("datetime64[D]")
    m = d.astype("datetime64[M]")
    month = m.astype(np.int64) % 12 + 1
    day = (d - m.astype("datetime64[D]")).astype(np.int64) + 1
    return month * 100 + day


__all__ = ["build", "PERSONAS", "BGNBD", "TABLES"]
