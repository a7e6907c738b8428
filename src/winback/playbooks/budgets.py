"""Per-campaign offer budgets and caps (pure, in memory).

A campaign's ``budget.amount_minor`` is the *expected* offer cost it may commit (the sum of the
expected costs of the offers its decisions chose; see :mod:`winback.playbooks.economics`). An
offer is rejected for a customer when

* its expected cost would exceed what remains of the campaign's budget,
* its cost is in another currency than the budget's (no exchange rates here),
* its ``max_per_campaign`` customers have already been given it in this campaign, or
* the customer's P(return) is below its ``min_p_return`` (or unknown while a minimum is set).

``commit(decision)`` records a decision's cost and offer. The campaigns stage builds the state
from the ``campaigns`` rows and enrollments (:func:`winback.playbooks.repository.load_budget_state`),
commits each treatment decision (not the holdout: they are not offered anything) and persists
the committed cost.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from winback.playbooks.economics import format_minor
from winback.playbooks.spec import Offer, PlaybookSpec

if TYPE_CHECKING:  # pragma: no cover
    from winback.playbooks.decide import Decision


@dataclass
class CampaignBudget:
    budget_minor: int | None = None  # None: no budget set
    currency: str | None = None
    committed_minor: int = 0
    offer_counts: Counter = field(default_factory=Counter)

    @property
    def remaining_minor(self) -> int | None:
        return None if self.budget_minor is None else self.budget_minor - self.committed_minor


class BudgetState:
    """Budgets, committed cost and offer counts per campaign key (unknown campaigns: no limits)."""

    def __init__(self, campaigns: dict[str, CampaignBudget] | None = None):
        self.campaigns: dict[str, CampaignBudget] = dict(campaigns or {})

    @classmethod
    def unlimited(cls) -> "BudgetState":
        return cls()

    @classmethod
    def from_playbook(cls, spec: PlaybookSpec, committed: dict[str, int] | None = None,
                      counts: dict[str, dict[str, int]] | None = None) -> "BudgetState":
        committed = committed or {}
        counts = counts or {}
        state = {}
        for key, campaign in spec.campaigns.items():
            budget = campaign.budget
            state[key] = CampaignBudget(
                budget_minor=budget.amount_minor if budget else None,
                currency=((budget.currency if budget and budget.currency else spec.currency) or "").upper() or None,
                committed_minor=int(committed.get(key, 0)),
                offer_counts=Counter(counts.get(key, {})))
        return cls(state)

    def set_campaign(self, campaign_key: str, *, budget_minor: int | None, committed_minor: int = 0,
                     offer_counts: dict[str, int] | None = None, currency: str | None = None) -> None:
        """Set one campaign's budget, committed cost and offer counts (e.g. from its ``campaigns`` row)."""
        self.campaigns[campaign_key] = CampaignBudget(budget_minor, currency.upper() if currency else None,
                                                      int(committed_minor or 0), Counter(offer_counts or {}))

    def get(self, campaign_key: str | None) -> CampaignBudget:
        if campaign_key is None:
            return CampaignBudget()
        return self.campaigns.setdefault(campaign_key, CampaignBudget())

    def remaining(self, campaign_key: str | None) -> int | None:
        return self.get(campaign_key).remaining_minor

    def count(self, campaign_key: str | None, offer_key: str) -> int:
        return self.get(campaign_key).offer_counts.get(offer_key, 0)

    def check(self, campaign_key: str | None, offer_key: str, offer: Offer, cost_minor: int, currency: str,
              *, p_return: float | None) -> list[str]:
        """Why the offer may not be given (empty: it may), in plain words."""
        reasons: list[str] = []
        if offer.min_p_return > 0:
            if p_return is None:
                reasons.append(f"needs P(return) of at least {offer.min_p_return:.2f} and the customer's is unknown")
            elif p_return < offer.min_p_return:
                reasons.append(f"needs P(return) of at least {offer.min_p_return:.2f}; the customer's is "
                               f"{p_return:.2f}")
        b = self.get(campaign_key)
        if offer.max_per_campaign is not None and b.offer_counts.get(offer_key, 0) >= offer.max_per_campaign:
            reasons.append(f"its cap of {offer.max_per_campaign} per campaign is reached")
        if b.budget_minor is not None and cost_minor > 0:
            if b.currency and currency.upper() != b.currency:
                reasons.append(f"its cost is in {currency.upper()} and the {campaign_key} budget is in {b.currency}")
            elif cost_minor > b.remaining_minor:
                left = format_minor(max(b.remaining_minor, 0), b.currency or currency)
                reasons.append(f"its expected cost {format_minor(cost_minor, currency)} exceeds what remains of "
                               f"the {campaign_key} budget ({left})")
        return reasons

    def commit(self, decision: "Decision") -> None:
        """Count the decision's offer and add its expected cost to its campaign (excluded: nothing)."""
        if decision.excluded or decision.campaign_key is None:
            return
        b = self.get(decision.campaign_key)
        b.committed_minor += int(decision.offer_cost_minor or 0)
        if decision.offer_key is not None:
            b.offer_counts[decision.offer_key] += 1
