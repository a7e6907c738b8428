"""A churn reason for every churned customer, with a confidence and the evidence that decided it.

Evidence about the customer's last churn (the subscription that ended last):

* **billing facts** - the churn was involuntary (the subscription's last charged invoice failed,
  or its cancellation code is ``payment_failed``; see :mod:`winback.analytics.metrics`). The
  reason is then ``involuntary`` whatever was said, because a failed payment ended it.
* the **cancellation code** (Stripe's ``cancellation_details.feedback`` or any mapped code),
* the **exit-survey choice** (``survey = 'exit'``, ``question_id = 'main_reason'``), mapped the same way,
* the **"would return if"** choice (``lower_price`` -> price, ``feature_available`` ->
  missing_feature, ...), weaker evidence,
* **free text** in any of the supported languages (the cancellation comment and exit-survey
  comments), classified by :mod:`winback.insights.reasons`.

Fusion is naive Bayes over the six text reasons with a uniform prior: each piece of evidence
contributes a likelihood - a stated code with reliability ``r`` gives ``r`` to its reason and
``(1 - r) / 5`` to each other; a text gives the classifier's probabilities. The posterior's top
reason is the customer's reason and its probability the confidence. Reliabilities are defaults
measured on generated data (stated codes are right about 85-90% of the time; generic codes such as
``unused``, ``low_quality`` and ``other`` say little and spread their weight, see
:func:`code_likelihood`) and can be overridden. A customer with no
evidence at all gets ``unknown`` with confidence 0.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import pyarrow as pa

from winback.analytics.reasons import (CANCEL_CODE_REASONS, COMPETITOR, INVOLUNTARY, MISSING_FEATURE, OTHER,
                                       PAYMENT_FAILED_CODE, PRICE, SUPPORT, UNKNOWN, USABILITY)

TEXT_REASONS: tuple[str, ...] = (PRICE, MISSING_FEATURE, USABILITY, SUPPORT, COMPETITOR, OTHER)

#: "What would bring you back?" choices -> the reason they imply.
WOULD_RETURN_REASONS: dict[str, str] = {
    "lower_price": PRICE, "feature_available": MISSING_FEATURE, "easier_to_use": USABILITY,
    "better_support": SUPPORT, "better_than_alternative": COMPETITOR, "nothing": OTHER,
}
#: Codes that map to ``other`` but say little about the actual reason: the likelihood each gives
#: the reasons it leans to (the rest share what is left).
GENERIC_CODE_LEANINGS: dict[str, dict[str, float]] = {
    "low_quality": {USABILITY: 0.36, SUPPORT: 0.26, OTHER: 0.26},
    "unused": {OTHER: 0.55, USABILITY: 0.15},
    "other": {OTHER: 0.45},
}


@dataclass(frozen=True)
class Reliability:
    """How often each kind of stated evidence names the true reason (defaults: see module doc)."""

    cancel_code: float = 0.85
    survey_choice: float = 0.85
    would_return_if: float = 0.55
    text_floor: float = 0.02  # the smallest likelihood a text gives any reason (no hard zeros)
    involuntary: float = 0.99


@dataclass
class ReasonDecision:
    reason: str
    confidence: float
    evidence: list[dict] = field(default_factory=list)


Classifier = Callable[[Sequence[str]], list]


def _stated(reason: str, r: float) -> np.ndarray:
    k = len(TEXT_REASONS)
    lik = np.full(k, (1.0 - r) / (k - 1))
    lik[TEXT_REASONS.index(reason)] = r
    return lik


def code_likelihood(code: str, reliability: Reliability, mapping: dict[str, str] | None = None,
                    kind: str = "cancel_code") -> tuple[str, np.ndarray] | None:
    """The reason a stated code names and its likelihood vector (None for unknown/involuntary codes).

    Generic codes spread their weight: Stripe's ``low_quality`` ("quality was less than
    expected") points at usability or support as much as at anything else
    (:data:`GENERIC_CODE_LEANINGS`), ``unused`` and ``other`` mostly at ``other``.
    """
    mapping = CANCEL_CODE_REASONS if mapping is None else mapping
    reason = mapping.get(code)
    if reason is None or reason not in TEXT_REASONS:
        return None
    if code in GENERIC_CODE_LEANINGS and mapping.get(code) == CANCEL_CODE_REASONS.get(code):
        lean = GENERIC_CODE_LEANINGS[code]
        lik = np.array([lean.get(r, 0.0) for r in TEXT_REASONS])
        rest = (1.0 - lik.sum()) / max(int((lik == 0).sum()), 1)
        lik = np.where(lik == 0, rest, lik)
        return TEXT_REASONS[int(np.argmax(lik))], lik
    r = reliability.survey_choice if kind == "survey_choice" else reliability.cancel_code
    return reason, _stated(reason, r)


def decide(evidence: list[tuple[str, str, np.ndarray | None, str]], involuntary: bool,
           reliability: Reliability = Reliability()) -> ReasonDecision:
    """Fuse one customer's evidence: items ``(source, value, likelihood, named_reason)``."""
    used = [e for e in evidence if e[2] is not None]
    if involuntary:
        items = [{"source": "billing", "value": "payment failed", "reason": INVOLUNTARY}]
        items += [{"source": s, "value": v, "reason": r} for s, v, _l, r in used]
        return ReasonDecision(INVOLUNTARY, reliability.involuntary, items)
    if not used:
        return ReasonDecision(UNKNOWN, 0.0, [])
    log_post = np.zeros(len(TEXT_REASONS))
    for _s, _v, lik, _r in used:
        log_post += np.log(np.maximum(lik, 1e-9))
    post = np.exp(log_post - log_post.max())
    post /= post.sum()
    best = int(np.argmax(post))
    items = [{"source": s, "value": v, "reason": r} for s, v, _l, r in used]
    return ReasonDecision(TEXT_REASONS[best], float(post[best]), items)


def text_likelihoods(texts: Sequence[str], classify: Classifier, floor: float) -> list[tuple[str, np.ndarray, float]]:
    """Classify texts in one batch: (reason, likelihood vector, confidence) per text."""
    if not texts:
        return []
    out = []
    for c in classify(list(texts)):
        scores = np.array([float(c.scores.get(r, 0.0)) for r in TEXT_REASONS])
        if c.reason not in TEXT_REASONS or scores.sum() <= 0:
            out.append((UNKNOWN, None, 0.0))
            continue
        scores = np.maximum(scores / scores.sum(), floor)
        out.append((c.reason, scores / scores.sum(), float(c.confidence)))
    return out


def _default_classifier() -> Classifier:
    from winback.insights.reasons import classify_texts

    return classify_texts


def churn_evidence(con, churned: pa.Table, *, before_days: int = 14, after_days: int = 60) -> pa.Table:
    """Stated evidence for each churned customer's last churn.

    ``churned`` has ``source, customer_id, churned_at`` (naive UTC). Returns rows
    ``source, customer_id, kind, value, at`` where kind is ``cancel_code``, ``cancel_text``,
    ``survey_choice``, ``would_return_if`` or ``survey_text``, taken from the subscription that
    ended last at or before ``churned_at`` and exit-survey answers between ``before_days`` before
    its cancellation and ``after_days`` after it ended. A customer without a subscription (a shop
    buyer who stopped buying) gets the exit-survey answers given from ``before_days`` before
    ``churned_at`` (their last purchase) on.
    """
    import duckdb
    import ibis

    subs = con.table("subscriptions")
    ended_at = subs.ended_at.coalesce(subs.canceled_at)
    subs = subs.filter(ended_at.notnull()).select(
        "source", "customer_id", "cancel_reason_code", "cancel_reason_text",
        canceled_at=subs.canceled_at.coalesce(ended_at), ended_at=ended_at)
    sv = con.table("survey_responses")
    sv = sv.filter(sv.survey == "exit").select("source", "customer_id", "responded_at", "question_id", "choice",
                                               "text")
    sub_rows = subs.to_pyarrow()
    survey_rows = sv.to_pyarrow()
    del ibis
    local = duckdb.connect()
    try:
        local.register("churned", churned.select(["source", "customer_id", "churned_at"]))
        local.register("subs", sub_rows)
        local.register("sv", survey_rows)
        return local.execute(f"""
            WITH last_sub AS (
                SELECT s.* FROM subs s JOIN churned c USING (source, customer_id)
                WHERE s.ended_at <= c.churned_at + INTERVAL 1 DAY
                QUALIFY row_number() OVER (PARTITION BY s.source, s.customer_id
                                           ORDER BY s.ended_at DESC, s.canceled_at DESC) = 1),
            anchor AS (
                SELECT c.source, c.customer_id,
                       coalesce(l.canceled_at, c.churned_at) AS window_start,
                       coalesce(l.ended_at, TIMESTAMP '9999-01-01') AS window_end
                FROM churned c LEFT JOIN last_sub l USING (source, customer_id)),
            answers AS (
                SELECT v.source, v.customer_id, v.question_id, v.choice, v.text, v.responded_at
                FROM sv v JOIN anchor a USING (source, customer_id)
                WHERE v.responded_at >= a.window_start - INTERVAL {int(before_days)} DAY
                  AND v.responded_at <= a.window_end + INTERVAL {int(after_days)} DAY)
            SELECT source, customer_id, 'cancel_code' AS kind, cancel_reason_code AS value, canceled_at AS "at"
              FROM last_sub WHERE cancel_reason_code IS NOT NULL AND trim(cancel_reason_code) <> ''
            UNION ALL
            SELECT source, customer_id, 'cancel_text', cancel_reason_text, canceled_at
              FROM last_sub WHERE cancel_reason_text IS NOT NULL AND trim(cancel_reason_text) <> ''
            UNION ALL
            SELECT source, customer_id,
                   CASE WHEN question_id = 'would_return_if' THEN 'would_return_if' ELSE 'survey_choice' END,
                   choice, responded_at
              FROM answers WHERE choice IS NOT NULL AND trim(choice) <> ''
            UNION ALL
            SELECT source, customer_id, 'survey_text', text, responded_at
              FROM answers WHERE text IS NOT NULL AND trim(text) <> ''
            ORDER BY source, customer_id, "at", kind
        """).to_arrow_table()
    finally:
        local.close()


def assign_reasons(churned: pa.Table, evidence: pa.Table, *, classify: Classifier | None = None,
                   reliability: Reliability = Reliability(), mapping: dict[str, str] | None = None) -> pa.Table:
    """One decision per churned customer: ``source, customer_id, reason, reason_confidence,
    reason_evidence`` (JSON text), ``stated_reason_code``.

    ``churned`` needs ``source, customer_id`` and ``involuntary`` (bool, may be null).
    """
    classify = classify or _default_classifier()
    mapping = CANCEL_CODE_REASONS if mapping is None else mapping
    keys = list(zip(churned.column("source").to_pylist(), churned.column("customer_id").to_pylist()))
    invol = [bool(v) for v in (churned.column("involuntary").to_pylist() if "involuntary" in churned.column_names
                               else [False] * len(keys))]
    by_key: dict[tuple, list[tuple[str, str]]] = {}
    ev = evidence.to_pydict() if evidence.num_rows else {"source": [], "customer_id": [], "kind": [], "value": []}
    for s, c, kind, value in zip(ev["source"], ev["customer_id"], ev["kind"], ev["value"]):
        by_key.setdefault((s, c), []).append((kind, value))
    texts = [v for items in by_key.values() for kind, v in items if kind in ("cancel_text", "survey_text")]
    unique_texts = list(dict.fromkeys(texts))
    classified = dict(zip(unique_texts, text_likelihoods(unique_texts, classify, reliability.text_floor)))
    reasons, confidences, evidence_json, codes = [], [], [], []
    for key, involuntary in zip(keys, invol):
        items = by_key.get(key, [])
        stated_code = next((v for kind, v in items if kind == "cancel_code"), None)
        involuntary = involuntary or stated_code == PAYMENT_FAILED_CODE
        fused: list[tuple[str, str, np.ndarray | None, str]] = []
        for kind, value in items:
            if kind in ("cancel_code", "survey_choice"):
                got = code_likelihood(value, reliability, mapping, kind)
                if got:
                    fused.append((kind, value, got[1], got[0]))
            elif kind == "would_return_if":
                reason = WOULD_RETURN_REASONS.get(value)
                if reason:
                    fused.append((kind, value, _stated(reason, reliability.would_return_if), reason))
            else:
                reason, lik, conf = classified[value]
                if lik is not None:
                    fused.append((kind, value[:200], lik, reason))
        decision = decide(fused, involuntary, reliability)
        reasons.append(decision.reason)
        confidences.append(round(decision.confidence, 4))
        evidence_json.append(json.dumps(decision.evidence, ensure_ascii=False))
        codes.append(stated_code)
    return pa.table({
        "source": pa.array([k[0] for k in keys], pa.string()),
        "customer_id": pa.array([k[1] for k in keys], pa.string()),
        "reason": pa.array(reasons, pa.string()),
        "reason_confidence": pa.array(confidences, pa.float64()),
        "reason_evidence": pa.array(evidence_json, pa.string()),
        "stated_reason_code": pa.array(codes, pa.string()),
    })


def describe(evidence_json: str | None) -> str:
    """Evidence in plain words, e.g. ``cancel code too_expensive; comment "..." (price)``."""
    if not evidence_json:
        return ""
    parts = []
    for item in json.loads(evidence_json):
        value = item["value"]
        if item["source"] in ("cancel_text", "survey_text"):
            value = f'"{value[:80]}"'
        parts.append(f"{item['source'].replace('_', ' ')} {value} ({item['reason']})")
    return "; ".join(parts)


def _utc_naive(value: dt.datetime) -> dt.datetime:
    return value.astimezone(dt.timezone.utc).replace(tzinfo=None) if value.tzinfo else value
