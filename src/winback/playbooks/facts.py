"""What the playbook knows about one customer, and whether a playbook condition matches it (pure).

:class:`CustomerFacts` is a flat, frozen snapshot assembled from the state store (``customers``,
``customer_scores``, ``segment_memberships``; see :func:`winback.playbooks.repository.load_facts`).
:func:`matches` evaluates a :class:`~winback.playbooks.spec.Condition` against it:

* every given field must match (AND); a list means any of its values (OR);
* ``reason``: a customer without a churn reason counts as ``unknown``;
* ``locale`` matches by language: a condition ``zh`` matches ``zh``, ``zh-Hant`` and ``zh_TW``;
* ``channel`` compares the customer's ``suggested_channel`` (a customer without one matches nothing);
* ``segment``: the customer is a member of any of the named segments;
* ``country`` compares case-insensitively;
* ``min_p_return`` / ``max_p_return`` / ``min_value_minor``: an unknown value never matches;
* ``has_phone`` / ``can_email`` compare the booleans.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from winback.playbooks.spec import Condition


@dataclass(frozen=True)
class CustomerFacts:
    customer_id: int
    external_id: str
    status: str | None = None
    reason: str | None = None
    value_tier: str | None = None
    persona: str | None = None
    locale: str | None = None
    segments: frozenset[str] = field(default_factory=frozenset)
    plan_id: str | None = None
    country: str | None = None
    suggested_channel: str | None = None
    has_phone: bool = False
    can_email: bool = False
    p_return: float | None = None
    value_after_return_minor: int | None = None
    mrr_minor: int | None = None
    currency: str | None = None
    tenure_days: int | None = None
    requested_features: tuple[str, ...] = ()
    reason_confidence: float | None = None  # how sure the profile is of ``reason`` (0..1), for explanations

    @property
    def reason_key(self) -> str:
        """The churn reason, ``unknown`` when none is recorded."""
        return self.reason or "unknown"

    @property
    def language(self) -> str | None:
        return language_of(self.locale)


def language_of(locale: str | None) -> str | None:
    """``zh-Hant`` -> ``zh``; ``pt_BR`` -> ``pt``; None/empty -> None."""
    if not locale:
        return None
    return re.split(r"[-_]", locale.strip(), maxsplit=1)[0].lower() or None


def _in(value: str | None, allowed: list[str]) -> bool:
    return value is not None and value in allowed


def matches(condition: Condition | None, facts: CustomerFacts) -> bool:
    """True when every field the condition gives matches the customer (an empty condition matches all)."""
    if condition is None:
        return True
    c = condition
    if c.reason is not None and facts.reason_key not in c.reason:
        return False
    if c.value_tier is not None and not _in(facts.value_tier, c.value_tier):
        return False
    if c.persona is not None and not _in(facts.persona, c.persona):
        return False
    if c.status is not None and not _in(facts.status, c.status):
        return False
    if c.plan_id is not None and not _in(facts.plan_id, c.plan_id):
        return False
    if c.locale is not None and facts.language not in {language_of(x) for x in c.locale}:
        return False
    if c.segment is not None and not (facts.segments & set(c.segment)):
        return False
    if c.country is not None and (facts.country or "").upper() not in {x.upper() for x in c.country}:
        return False
    if c.channel is not None and not _in(facts.suggested_channel, c.channel):
        return False
    if c.has_phone is not None and bool(facts.has_phone) != c.has_phone:
        return False
    if c.can_email is not None and bool(facts.can_email) != c.can_email:
        return False
    if c.min_p_return is not None and (facts.p_return is None or facts.p_return < c.min_p_return):
        return False
    if c.max_p_return is not None and (facts.p_return is None or facts.p_return > c.max_p_return):
        return False
    if c.min_value_minor is not None and (facts.value_after_return_minor is None
                                          or facts.value_after_return_minor < c.min_value_minor):
        return False
    return True


MARKETING_BASES = ("consent", "soft_opt_in")


def facts_from_record(r, segments=()) -> CustomerFacts:
    """Facts from one joined customers + customer_scores record (a mapping; ``churn_reason`` or ``reason``)."""
    import json

    get = r.get if hasattr(r, "get") else (lambda k, d=None: getattr(r, k, d))
    value = get("value_after_return_minor")
    if value is None and get("status") == "active":
        value = get("expected_clv_12m_minor")  # active customers: what they bring if they stay
    requested = get("requested_features")
    try:
        parsed = json.loads(requested) if isinstance(requested, str) and requested else requested or []
    except ValueError:
        parsed = []
    return CustomerFacts(
        customer_id=int(get("id")), external_id=str(get("external_id")), status=get("status"),
        reason=get("churn_reason", get("reason")), value_tier=get("value_tier"), persona=get("persona"),
        locale=get("locale"), segments=frozenset(segments), plan_id=get("plan_id"), country=get("country"),
        suggested_channel=get("suggested_channel"), has_phone=bool(get("phone")),
        can_email=bool(get("email")) and not get("marketing_opt_out") and get("marketing_basis") in MARKETING_BASES,
        p_return=get("p_return"), value_after_return_minor=value, mrr_minor=get("mrr_minor"),
        currency=get("currency"), tenure_days=get("tenure_days"),
        requested_features=tuple(str(v) for v in parsed) if isinstance(parsed, list) else (),
        reason_confidence=get("reason_confidence"))
