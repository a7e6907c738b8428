"""The decision: for one customer, which campaign, strategy and offer - and why (pure, no I/O).

**Win-back** (``campaign_key=None``, DOMAIN.md steps 6 and 8):

1. the strategy is the playbook's strategy for the customer's churn reason (no reason, or a reason
   the playbook has no strategy for: ``unknown``);
2. the rules refine it in order: the first matching rule that gives a ``strategy`` sets the
   strategy, the first that gives a ``campaign`` the campaign, the first that gives ``offers`` the
   candidate offers; a matching rule with ``exclude: true`` stops there and excludes the customer;
3. the candidates are the rule's offers, else the strategy's list for the customer's value tier
   (else its ``default`` list); the campaign is the rule's, else the strategy's;
4. every candidate is priced (:mod:`winback.playbooks.economics`) and checked against the
   campaign's budget and the offer's caps (:mod:`winback.playbooks.budgets`);
5. the admissible candidate with the highest expected gain wins (ties: the higher P(return), then
   the lower cost, then the order listed) - but only when it beats *no incentive* on expected
   gain (or ties it while raising P(return) at no cost); otherwise no offer is made.

**Other campaigns** (``campaign_key`` given: abandoned checkout, inactivity, events ...): the
candidates are the campaign's ``offers``. A matching rule that names this campaign replaces
them with its offers; a matching rule without a campaign narrows them to the offers both lists
hold (so "high-AOV buyers want service, not discounts" removes free shipping from the abandoned
checkout); exclusion rules apply as above. The strategy is not used.

The :class:`Decision` carries the numbers and a plain-English ``explanation`` a marketer can read.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from winback.kit.errors import WinbackError
from winback.playbooks import economics as econ
from winback.playbooks.budgets import BudgetState
from winback.playbooks.facts import CustomerFacts, matches
from winback.playbooks.spec import PlaybookSpec, Rule


@dataclass(frozen=True)
class Candidate:
    offer: str
    kind: str
    p_with_offer: float
    cost_minor: int
    expected_gain_minor: int
    incremental_gain_minor: int
    admissible: bool
    rejected_because: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Decision:
    customer_id: int
    external_id: str
    mode: str  # winback | campaign
    campaign_key: str | None
    strategy_key: str | None
    offer_key: str | None  # None: no incentive
    offer_kind: str | None
    reason: str  # the customer's churn reason ('unknown' when none)
    currency: str
    p_base: float
    p_from_profile: bool
    p_with_offer: float
    value_after_return_minor: int
    offer_cost_minor: int  # expected cost (already x P(return | offer))
    expected_gain_minor: int  # P(return | offer) x value - cost
    baseline_gain_minor: int  # P(return) x value with no offer
    incremental_gain_minor: int  # expected gain - baseline
    excluded: bool
    rules_applied: tuple[str, ...] = ()
    candidates: tuple[Candidate, ...] = ()
    explanation: tuple[str, ...] = field(default_factory=tuple)
    exclusion: str | None = None  # why excluded: "rule NAME" or "no strategy"

    # short names used by the campaigns stage
    @property
    def campaign(self) -> str | None:
        return self.campaign_key

    @property
    def strategy(self) -> str | None:
        return self.strategy_key

    @property
    def offer(self) -> str | None:
        return self.offer_key

    @property
    def explanation_text(self) -> str:
        return " ".join(self.explanation)

    def as_dict(self) -> dict:
        out = asdict(self)
        out["rules_applied"] = list(self.rules_applied)
        out["candidates"] = [c.as_dict() for c in self.candidates]
        out["explanation"] = list(self.explanation)
        return out


def _p(x: float) -> str:
    return f"{x:.1%}" if x < 0.1 else f"{x:.0%}"


def _reason_sentence(facts: CustomerFacts) -> str:
    if facts.reason is None:
        return "Reason: unknown (no churn reason on record)."
    if facts.reason_confidence is not None:
        return f"Reason: {facts.reason} (confidence {facts.reason_confidence:.2f} from the profile)."
    return f"Reason: {facts.reason} (from the profile)."


def _rule_sentence(rule: Rule, fields: list[str]) -> str:
    what = rule.note or ("sets " + ", ".join(fields) if fields else "matched")
    return f"Rule {rule.name} applied ({what})."


def decide(playbook: PlaybookSpec, facts: CustomerFacts, budgets: BudgetState | None = None, *,
           campaign_key: str | None = None, offer_override: str | None = None, commit: bool = False) -> Decision:
    """The campaign, strategy and offer for one customer; see the module docstring.

    ``offer_override``: an experiment variant's offer key; it replaces the decided offer when it is
    admissible (budget, caps, currency), whatever its expected gain - that is the experiment.
    ``commit``: also ``budgets.commit(decision)`` (count the offer, add its expected cost)."""
    decision = _decide(playbook, facts, budgets if budgets is not None else BudgetState(), campaign_key,
                       offer_override)
    if commit and budgets is not None:
        budgets.commit(decision)
    return decision


def _decide(playbook: PlaybookSpec, facts: CustomerFacts, budgets: BudgetState, campaign_key: str | None,
            offer_override: str | None) -> Decision:
    base = econ.baseline(facts, playbook.currency)
    money = lambda minor: econ.format_minor(minor, base.currency)  # noqa: E731
    reason = facts.reason_key
    lines: list[str] = [_reason_sentence(facts)]
    rules_applied: list[str] = []
    strategy_key: str | None = None

    def excluded_decision(campaign: str | None, strategy: str | None, rule: Rule | None, why: str) -> Decision:
        if rule is not None:
            rules_applied.append(rule.name)
        lines.append(why)
        return Decision(facts.customer_id, facts.external_id, "winback" if campaign_key is None else "campaign",
                        campaign, strategy, None, None, reason, base.currency, base.p_base, base.p_from_profile,
                        base.p_base, base.value_after_return_minor, 0, base.expected_gain_minor,
                        base.expected_gain_minor, 0, True, tuple(rules_applied), (), tuple(lines),
                        f"rule {rule.name}" if rule is not None else "no strategy")

    if campaign_key is None:
        mode = "winback"
        strategy_key = reason if reason in playbook.strategies else (
            "unknown" if "unknown" in playbook.strategies else None)
        if strategy_key is not None and strategy_key != reason:
            lines.append(f"The playbook has no strategy for {reason}; the unknown strategy is used.")
        chosen: dict[str, tuple[str, object]] = {}  # field -> (rule name, value)
        for rule in playbook.rules:
            if not matches(rule.when, facts):
                continue
            if rule.exclude:
                campaign = (chosen.get("campaign", (None, None))[1]
                            or (playbook.strategies[strategy_key].campaign if strategy_key else None))
                return excluded_decision(campaign, strategy_key, rule,
                                         f"Excluded by rule {rule.name}" + (f" ({rule.note})." if rule.note else "."))
            fields = []
            for name in ("strategy", "campaign", "offers"):
                value = getattr(rule, name)
                if value is not None and name not in chosen:
                    chosen[name] = (rule.name, value)
                    fields.append(name)
            if fields:
                rules_applied.append(rule.name)
                lines.append(_rule_sentence(rule, fields))
        if "strategy" in chosen:
            strategy_key = str(chosen["strategy"][1])
        if strategy_key is None:
            return excluded_decision(None, None, None, f"No strategy: the playbook has none for {reason} and no "
                                                       f"'unknown' strategy.")
        strategy = playbook.strategies[strategy_key]
        lines.insert(1, f"Strategy: {strategy.title}."
                     + (f" (set by rule {chosen['strategy'][0]})" if "strategy" in chosen else ""))
        campaign = str(chosen["campaign"][1]) if "campaign" in chosen else strategy.campaign
        if "offers" in chosen:
            keys = list(chosen["offers"][1])  # type: ignore[arg-type]
            source = f"rule {chosen['offers'][0]}"
        else:
            tier = facts.value_tier if facts.value_tier in strategy.offers else "default"
            keys = list(strategy.offers.get(tier, []))
            source = (f"the strategy's list for {tier} value" if tier != "default" else
                      "the strategy's default list" + (f" (no list for {facts.value_tier} value)"
                                                       if facts.value_tier else ""))
        lines.append(f"Campaign: {campaign} ({playbook.campaigns[campaign].title}).")
    else:
        mode = "campaign"
        if campaign_key not in playbook.campaigns:
            raise WinbackError(f"unknown campaign {campaign_key!r} in playbook {playbook.name}")
        spec = playbook.campaigns[campaign_key]
        campaign = campaign_key
        lines.append(f"Campaign: {campaign_key} ({spec.title}; audience {spec.audience.trigger}).")
        keys = list(spec.offers)
        source = "the campaign's offers"
        replaced = False
        for rule in playbook.rules:
            if not matches(rule.when, facts):
                continue
            if rule.exclude:
                return excluded_decision(campaign, None, rule,
                                         f"Excluded by rule {rule.name}" + (f" ({rule.note})." if rule.note else "."))
            if rule.offers is None or replaced:
                continue
            if rule.campaign == campaign_key:
                keys, source, replaced = list(rule.offers), f"rule {rule.name}", True
                rules_applied.append(rule.name)
                lines.append(_rule_sentence(rule, ["offers"]))
            elif rule.campaign is None:
                narrowed = [k for k in keys if k in rule.offers]
                if narrowed and narrowed != keys:
                    keys, source, replaced = narrowed, f"the campaign's offers narrowed by rule {rule.name}", True
                    rules_applied.append(rule.name)
                    lines.append(_rule_sentence(rule, ["offers"]))

    # -------------------------------------------------------------- price every candidate
    if not base.p_from_profile:
        lines.append(f"P(return) is not in the profile; the prior for reason {reason} ({_p(base.p_base)}) is used.")
    if not base.value_known:
        lines.append("The value after return is unknown (no value or MRR in the profile), so no offer can pay "
                     "for itself.")
    seen: set[str] = set()
    candidates: list[Candidate] = []
    for key in keys:
        if key in seen:
            continue
        seen.add(key)
        offer = playbook.offers[key]
        e = econ.evaluate(key, offer, facts, base, playbook.currency)
        why: list[str] = []
        if e.currency_problem:
            why.append(e.currency_problem)
        if not e.priceable:
            why.append("its cost depends on the customer's monthly revenue, which is unknown")
        why += budgets.check(campaign, key, offer, e.cost_minor, base.currency, p_return=facts.p_return)
        candidates.append(Candidate(key, offer.kind, round(e.p_with_offer, 6), e.cost_minor, e.expected_gain_minor,
                                    e.incremental_gain_minor, not why, "; ".join(why) or None))

    admissible = [c for c in candidates if c.admissible]
    order = {c.offer: i for i, c in enumerate(candidates)}
    best = max(admissible, key=lambda c: (c.expected_gain_minor, c.p_with_offer, -c.cost_minor, -order[c.offer]),
               default=None)
    take = best is not None and (best.expected_gain_minor > base.expected_gain_minor
                                 or (best.expected_gain_minor == base.expected_gain_minor
                                     and best.p_with_offer > base.p_base and best.cost_minor == 0))
    if keys:
        lines.append(f"Candidates from {source}: {', '.join(dict.fromkeys(keys))}.")
    value_text = money(base.value_after_return_minor)
    if take:
        assert best is not None
        others = [c for c in admissible if c is not best]
        tail = ""
        if others:
            tail = f" - the best of {len(admissible)} candidates (" + "; ".join(
                f"{c.offer} {money(c.expected_gain_minor)}" for c in others) + ")"
        lines.append(f"Offer {best.offer}: P(return) {_p(base.p_base)} -> {_p(best.p_with_offer)}, value after "
                     f"return {value_text}, expected cost {money(best.cost_minor)}, expected gain "
                     f"{money(best.expected_gain_minor)}{tail}; {money(best.incremental_gain_minor)} more than no "
                     f"incentive ({money(base.expected_gain_minor)}).")
        offer_key, kind, p_with, cost, gain = (best.offer, best.kind, best.p_with_offer, best.cost_minor,
                                               best.expected_gain_minor)
    else:
        if not candidates:
            why_none = "no offers are listed for this customer"
        elif best is None:
            why_none = f"all {len(candidates)} candidates were rejected"
        else:
            if best.kind == "none" and len(admissible) == 1:
                why_none = f"the only admissible candidate is {best.offer}"
            elif len(admissible) == 1:
                why_none = (f"the only admissible candidate, {best.offer}, does not beat no incentive on expected "
                            f"gain ({money(best.expected_gain_minor)})")
            else:
                why_none = (f"none of the {len(admissible)} admissible candidates beats no incentive on expected "
                            f"gain (the best, {best.offer}, would give {money(best.expected_gain_minor)})")
        lines.append(f"No incentive: {why_none}. P(return) {_p(base.p_base)}, value after return {value_text}, "
                     f"expected gain without an offer {money(base.expected_gain_minor)}.")
        offer_key, kind, p_with, cost, gain = None, None, base.p_base, 0, base.expected_gain_minor
    rejected = [c for c in candidates if not c.admissible]
    if rejected:
        lines.append("Not offered: " + "; ".join(f"{c.offer} ({c.rejected_because})" for c in rejected) + ".")
    if offer_override is not None and offer_override != offer_key:
        if offer_override not in playbook.offers:
            lines.append(f"Experiment: variant offer {offer_override} is not in the playbook; kept "
                         f"{offer_key or 'no incentive'}.")
        else:
            found = next((c for c in candidates if c.offer == offer_override), None)
            if found is None:
                offer = playbook.offers[offer_override]
                e = econ.evaluate(offer_override, offer, facts, base, playbook.currency)
                why = ([e.currency_problem] if e.currency_problem else []) + (
                    [] if e.priceable else ["its cost depends on the customer's monthly revenue, which is unknown"])
                why += budgets.check(campaign, offer_override, offer, e.cost_minor, base.currency,
                                     p_return=facts.p_return)
                found = Candidate(offer_override, offer.kind, round(e.p_with_offer, 6), e.cost_minor,
                                  e.expected_gain_minor, e.incremental_gain_minor, not why, "; ".join(why) or None)
                candidates.append(found)
            if found.admissible:
                lines.append(f"Experiment: the variant's offer {found.offer} replaces {offer_key or 'no incentive'}"
                             f" (P(return) {_p(base.p_base)} -> {_p(found.p_with_offer)}, expected cost "
                             f"{money(found.cost_minor)}, expected gain {money(found.expected_gain_minor)}).")
                if found.kind == "none":
                    offer_key, kind, p_with, cost, gain = (None, None, base.p_base, 0, base.expected_gain_minor)
                else:
                    offer_key, kind, p_with, cost, gain = (found.offer, found.kind, found.p_with_offer,
                                                           found.cost_minor, found.expected_gain_minor)
            else:
                lines.append(f"Experiment: the variant's offer {found.offer} cannot be made "
                             f"({found.rejected_because}); kept {offer_key or 'no incentive'}.")
    return Decision(facts.customer_id, facts.external_id, mode, campaign, strategy_key, offer_key, kind, reason,
                    base.currency, base.p_base, base.p_from_profile, p_with, base.value_after_return_minor, cost,
                    gain, base.expected_gain_minor, gain - base.expected_gain_minor, False, tuple(rules_applied),
                    tuple(candidates), tuple(lines))
