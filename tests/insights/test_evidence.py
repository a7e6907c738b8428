"""Evidence fusion for churn reasons: hand-built cases with exact expectations."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pyarrow as pa
import pytest

from winback.insights.evidence import (TEXT_REASONS, Reliability, assign_reasons, code_likelihood, decide,
                                       describe)

R = Reliability()


def _churned(*rows):
    return pa.table({"source": [r[0] for r in rows], "customer_id": [r[1] for r in rows],
                     "involuntary": [r[2] for r in rows]})


def _evidence(*rows):
    return pa.table({"source": [r[0] for r in rows], "customer_id": [r[1] for r in rows],
                     "kind": [r[2] for r in rows], "value": [r[3] for r in rows],
                     "at": [dt.datetime(2025, 1, 1)] * len(rows)})


def test_no_evidence_is_unknown_with_zero_confidence():
    d = decide([], involuntary=False)
    assert (d.reason, d.confidence, d.evidence) == ("unknown", 0.0, [])


def test_involuntary_comes_from_billing_whatever_was_said():
    got = code_likelihood("too_expensive", R)
    d = decide([("cancel_code", "too_expensive", got[1], got[0])], involuntary=True)
    assert d.reason == "involuntary" and d.confidence == R.involuntary
    assert d.evidence[0]["source"] == "billing"


def test_one_stated_code_gives_its_reliability_as_confidence():
    reason, lik = code_likelihood("too_expensive", R)
    d = decide([("cancel_code", "too_expensive", lik, reason)], involuntary=False)
    assert d.reason == "price"
    assert d.confidence == pytest.approx(R.cancel_code)


def test_two_agreeing_codes_are_more_certain_than_one():
    reason, lik = code_likelihood("missing_features", R)
    one = decide([("cancel_code", "x", lik, reason)], False)
    two = decide([("cancel_code", "x", lik, reason), ("survey_choice", "x", lik, reason)], False)
    # naive Bayes with a uniform prior: 0.85^2 / (0.85^2 + 5 x 0.03^2)
    assert two.confidence == pytest.approx(0.85 ** 2 / (0.85 ** 2 + 5 * 0.03 ** 2))
    assert two.confidence > one.confidence


def test_generic_codes_lean_but_do_not_decide_against_specific_evidence():
    lq = code_likelihood("low_quality", R)
    assert lq[0] == "usability"
    assert lq[1].sum() == pytest.approx(1.0)
    price = code_likelihood("too_expensive", R)
    d = decide([("cancel_code", "low_quality", lq[1], lq[0]), ("survey_choice", "too_expensive", price[1], price[0])],
               False)
    assert d.reason == "price"


def test_unmapped_codes_and_payment_failed_are_not_text_evidence():
    assert code_likelihood("payment_failed", R) is None
    assert code_likelihood("made_up_code", R, mapping={}) is None


def test_assign_reasons_reads_text_in_any_language_and_keeps_the_evidence():
    churned = _churned(("s", "a", False), ("s", "b", False), ("s", "c", True), ("s", "d", None), ("s", "e", False))
    evidence = _evidence(
        ("s", "a", "cancel_text", "値上げ後の料金は高すぎて、予算に合いません。"),
        ("s", "b", "survey_text", "Ми перейшли на конкурента, у них дешевше і краще."),
        ("s", "b", "would_return_if", "better_than_alternative"),
        ("s", "c", "cancel_code", "too_complex"),
        ("s", "e", "cancel_code", "payment_failed"),
    )
    out = assign_reasons(churned, evidence).to_pylist()
    by = {r["customer_id"]: r for r in out}
    assert by["a"]["reason"] == "price" and by["a"]["reason_confidence"] > 0.5
    assert by["b"]["reason"] == "competitor"
    assert by["c"]["reason"] == "involuntary"  # billing facts win
    assert by["d"]["reason"] == "unknown" and by["d"]["reason_confidence"] == 0.0
    assert by["e"]["reason"] == "involuntary" and by["e"]["stated_reason_code"] == "payment_failed"
    ev = json.loads(by["b"]["reason_evidence"])
    assert [e["source"] for e in ev] == ["survey_text", "would_return_if"]
    assert "survey text" in describe(by["b"]["reason_evidence"])


def test_text_contradicting_a_generic_code_wins():
    churned = _churned(("s", "a", False))
    evidence = _evidence(("s", "a", "cancel_code", "unused"),
                         ("s", "a", "cancel_text", "We really needed a Salesforce integration and it never came."))
    out = assign_reasons(churned, evidence).to_pylist()[0]
    assert out["reason"] == "missing_feature"


def test_hostile_text_does_not_break_the_fusion():
    churned = _churned(("s", "a", False), ("s", "b", False))
    evidence = _evidence(("s", "a", "cancel_text", "\x00\x01" + "🙂" * 50),
                         ("s", "b", "survey_text", "=cmd|' /C calc'!A0 " + "x" * 100_000))
    out = assign_reasons(churned, evidence).to_pylist()
    for r in out:
        assert r["reason"] in (*TEXT_REASONS, "unknown")
        assert 0.0 <= r["reason_confidence"] <= 1.0
        assert len(r["reason_evidence"]) < 2000  # quoted text is cut


def test_every_likelihood_is_a_distribution():
    for code in ("too_expensive", "missing_features", "too_complex", "customer_service", "switched_service",
                 "unused", "low_quality", "other"):
        _reason, lik = code_likelihood(code, R)
        assert lik.sum() == pytest.approx(1.0) and np.all(lik > 0)
