"""The playbook: versioned configuration of reason -> strategy -> offer -> message sequence.

A playbook is one YAML file (``playbooks/<name>.yaml`` in the workspace; the shipped default is
``playbooks/builtin/default.yaml``). Its parts::

    name: default
    title: ...
    currency: USD                       # money values below are in this currency's minor units
    offers:        {KEY: Offer}         # the incentive catalogue
    strategies:    {REASON: Strategy}   # per churn reason: what to say, which offers, which campaign
    rules:         [Rule]               # ordered refinements by segment, value tier, persona, locale ...
    campaigns:     {KEY: Campaign}      # audience (trigger) + sequence + holdout + budget + experiments
    sequences:     {KEY: Sequence}      # steps with delays, channel, template, exit conditions
    fallbacks:     {TAG: {LOCALE: text}}  # per-merge-tag fallbacks used when a value is missing

Every problem is reported with its place (``campaigns.winback_price.sequence``) and, for YAML
files, its line; nothing is saved until all are fixed (:class:`PlaybookError`).

Durations are written ``30m``, ``1h``, ``24h``, ``3d``, ``2w`` (or a number of seconds).
"""

from __future__ import annotations

import datetime as dt
import difflib
import re
from pathlib import Path
from typing import Any, Literal, NamedTuple

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from winback.kit.errors import WinbackError

KEY = r"^[a-z0-9][a-z0-9_]{0,63}$"
KEY_PATTERN = re.compile(KEY)
TEMPLATE_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_]{0,63}(/[a-z0-9][a-z0-9_]{0,63}){0,3}$")
LOCALES = ("en", "ja", "ko", "uk", "zh")
REASONS = ("price", "missing_feature", "usability", "support", "competitor", "other", "involuntary", "unknown")
VALUE_TIERS = ("top", "high", "mid", "low")
STATUSES = ("active", "churned", "lost", "trial_only", "trialing", "prospect")
PERSONAS = ("bouncer", "passive_browser", "cart_abandoner", "one_time_low_aov", "one_time_high_aov", "repeat_buyer")
OFFER_KINDS = ("none", "percent_off", "lower_tier", "annual_incentive", "pause", "extended_trial",
               "expert_session", "account_credit", "free_shipping", "payment_update")
CHANNELS = ("email", "task", "webhook", "audience")
#: customer_events types the campaigns understand (triggers and exit conditions)
EVENT_TYPES = ("subscription_canceled", "checkout_abandoned", "checkout_failed", "payment_failed",
               "payment_recovered", "release_shipped", "returned", "purchased", "unsubscribed",
               "survey_answered", "card_updated", "coupon_redeemed", "complained", "dunning_exhausted")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)?\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, None: 1}


def parse_duration(value: Any) -> dt.timedelta:
    if isinstance(value, bool):
        raise ValueError(f"expected a duration such as 1h or 3d, got {value!r}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        m = _DURATION.match(str(value))
        if not m:
            raise ValueError(f"expected a duration such as 30m, 1h, 3d or 2w, got {value!r}")
        seconds = float(m.group(1)) * _UNITS[m.group(2)]
    if seconds < 0 or seconds > 366 * 86400:
        raise ValueError(f"duration {value!r} is out of range (0 to 366 days)")
    return dt.timedelta(seconds=seconds)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Localised = dict[str, str]  # locale -> text; "en" is required where a text is required


def _check_localised(value: Localised | None, required: bool = True) -> Localised | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = {"en": value}
    unknown = [k for k in value if k not in LOCALES]
    if unknown:
        raise ValueError(f"unknown locale {unknown[0]!r}; expected one of {', '.join(LOCALES)}")
    if required and "en" not in value:
        raise ValueError("an English text ('en') is required as the fallback")
    return value


# ---------------------------------------------------------------------------------- offers


class Offer(_Strict):
    """One incentive. ``lift`` is the expected absolute rise in P(return) by churn reason (a prior
    the economics use until measured results replace it); ``cost_minor`` a fixed cost to us."""

    kind: Literal[OFFER_KINDS]  # type: ignore[valid-type]
    title: Localised
    percent: float | None = Field(None, gt=0, le=100, description="percent_off / annual_incentive")
    months: int | None = Field(None, ge=1, le=36, description="percent_off duration, pause length")
    days: int | None = Field(None, ge=1, le=366, description="extended_trial length")
    free_months: int | None = Field(None, ge=1, le=12, description="annual_incentive: months free on a yearly plan")
    amount_minor: int | None = Field(None, ge=1, description="account_credit amount")
    cost_minor: int = Field(0, ge=0, description="fixed cost to us when accepted (e.g. an expert's hour)")
    higher_tier: bool = Field(False, description="extended_trial of the next higher plan")
    coupon: bool = Field(False, description="issue a unique single-use code")
    expires_days: int = Field(14, ge=1, le=366, description="the offer/coupon expires after N days")
    max_per_campaign: int | None = Field(None, ge=1, description="cap: at most N customers get it per campaign")
    min_p_return: float = Field(0.0, ge=0, le=1, description="only for customers at least this likely to return "
                                                              "(deep discounts only for likely converters)")
    lift: dict[str, float] = Field(default_factory=dict, description="reason -> expected rise in P(return)")

    @field_validator("title", mode="before")
    @classmethod
    def _title(cls, v):
        return _check_localised(v)

    @field_validator("lift")
    @classmethod
    def _lift(cls, v: dict[str, float]) -> dict[str, float]:
        for reason, lift in v.items():
            if reason not in REASONS and reason != "default":
                raise ValueError(f"unknown reason {reason!r}; expected one of {', '.join(REASONS)} or default")
            if not -1.0 <= float(lift) <= 1.0:
                raise ValueError(f"lift for {reason} must be between -1 and 1, got {lift}")
        return v

    @model_validator(mode="after")
    def _terms(self) -> "Offer":
        need = {"percent_off": ("percent", "months"), "annual_incentive": (), "pause": ("months",),
                "extended_trial": ("days",), "account_credit": ("amount_minor",)}.get(self.kind, ())
        missing = [f for f in need if getattr(self, f) is None]
        if missing:
            raise ValueError(f"a {self.kind} offer needs {' and '.join(missing)}")
        if self.kind == "annual_incentive" and self.percent is None and self.free_months is None:
            raise ValueError("an annual_incentive offer needs percent or free_months")
        return self


# ---------------------------------------------------------------------------------- strategies and rules


class Strategy(_Strict):
    """What answers one churn reason (DOMAIN.md step 6)."""

    title: str
    message: Localised = Field(description="the example message / angle of the campaign")
    campaign: str = Field(description="the campaign that carries it")
    offers: dict[str, list[str]] = Field(default_factory=dict, description="value tier (or default) -> candidate "
                                                                            "offer keys, best first")
    channel: Literal["email", "phone", "retargeting"] | None = None

    @field_validator("message", mode="before")
    @classmethod
    def _message(cls, v):
        return _check_localised(v)

    @field_validator("offers")
    @classmethod
    def _tiers(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        for tier in v:
            if tier not in VALUE_TIERS and tier != "default":
                raise ValueError(f"unknown value tier {tier!r}; expected {', '.join(VALUE_TIERS)} or default")
        return v


class Condition(_Strict):
    """All given fields must match (lists mean any of). Used by rules and step conditions."""

    reason: list[str] | None = None
    value_tier: list[str] | None = None
    persona: list[str] | None = None
    locale: list[str] | None = None
    status: list[str] | None = None
    segment: list[str] | None = None
    plan_id: list[str] | None = None
    country: list[str] | None = None
    channel: list[str] | None = Field(None, description="the customer's suggested channel")
    has_phone: bool | None = None
    can_email: bool | None = Field(None, description="the customer may receive marketing email")
    min_p_return: float | None = Field(None, ge=0, le=1)
    max_p_return: float | None = Field(None, ge=0, le=1)
    min_value_minor: int | None = Field(None, ge=0, description="value after return at least this")

    @field_validator("reason", "value_tier", "persona", "locale", "status", "segment", "plan_id", "country",
                     "channel", mode="before")
    @classmethod
    def _listify(cls, v):
        if v is None:
            return None
        return [v] if isinstance(v, str) else v

    @model_validator(mode="after")
    def _known(self) -> "Condition":
        for field, allowed in (("reason", REASONS), ("value_tier", VALUE_TIERS), ("persona", PERSONAS),
                               ("locale", LOCALES), ("status", STATUSES),
                               ("channel", ("email", "phone", "retargeting", "none"))):
            for value in getattr(self, field) or ():
                if value not in allowed:
                    raise ValueError(f"{field}: unknown value {value!r}{_did_you_mean(value, allowed)}; "
                                     f"expected one of {', '.join(allowed)}")
        return self


class Rule(_Strict):
    """A refinement: when the condition matches, override strategy, campaign or offers (first match wins
    per field, in order), or exclude the customer."""

    name: str = Field(pattern=KEY)
    when: Condition
    strategy: str | None = None
    campaign: str | None = None
    offers: list[str] | None = None
    exclude: bool = False
    note: str | None = None


# ---------------------------------------------------------------------------------- sequences


class Step(_Strict):
    key: str = Field(pattern=KEY)
    after: dt.timedelta = Field(dt.timedelta(0), description="delay after the previous step (the first: after "
                                                             "enrollment)")
    channel: Literal[CHANNELS] = "email"  # type: ignore[valid-type]
    template: str | None = Field(None, description="template key, e.g. winback/reminder")
    offer: bool = Field(False, description="this step presents the offer (issues the coupon if any)")
    when: Condition | None = Field(None, description="skip the step for customers who do not match")
    title: str | None = Field(None, description="task channel: the task's title")

    @field_validator("after", mode="before")
    @classmethod
    def _after(cls, v):
        return parse_duration(v)

    @field_validator("template")
    @classmethod
    def _template(cls, v):
        if v is not None and not TEMPLATE_PATTERN.match(v):
            raise ValueError(f"{v!r} is not a template key (lower-case words joined by /, e.g. winback/reminder)")
        return v

    @model_validator(mode="after")
    def _needs_template(self) -> "Step":
        if self.channel == "email" and not self.template:
            raise ValueError("an email step needs a template")
        return self


class Sequence(_Strict):
    title: str
    category: Literal["commercial", "transactional"] = "commercial"
    exit_on: list[str] = Field(default_factory=lambda: ["returned", "purchased", "unsubscribed"])
    steps: list[Step] = Field(min_length=1)

    @field_validator("exit_on")
    @classmethod
    def _exit(cls, v):
        for e in v:
            if e not in EVENT_TYPES:
                raise ValueError(f"unknown event {e!r}{_did_you_mean(e, EVENT_TYPES)}; expected one of "
                                 f"{', '.join(EVENT_TYPES)}")
        return v

    @model_validator(mode="after")
    def _unique_steps(self) -> "Sequence":
        keys = [s.key for s in self.steps]
        dup = {k for k in keys if keys.count(k) > 1}
        if dup:
            raise ValueError(f"step key {sorted(dup)[0]!r} is used twice")
        return self


# ---------------------------------------------------------------------------------- campaigns


class Audience(_Strict):
    """Who enters the campaign (exactly one trigger):

    * ``winback: true`` - lost customers whose strategy (by reason, refined by rules) names this campaign;
    * ``segment: NAME`` - customers who are in (entered) the segment;
    * ``event: TYPE`` (+ ``within``) - customers with that event recently (checkout abandoned, payment
      failed, release shipped matching a request, returned ...);
    * ``inactivity: DURATION`` - active regular customers with no purchase for that long.
    """

    winback: bool = False
    segment: str | None = None
    event: str | None = None
    within: dt.timedelta = Field(dt.timedelta(days=30), description="events: only this recent")
    inactivity: dt.timedelta | None = None
    statuses: list[str] | None = Field(None, description="restrict to these lifecycle statuses")
    where: Condition | None = Field(None, description="further restrict the audience")

    @field_validator("within", "inactivity", mode="before")
    @classmethod
    def _dur(cls, v):
        return None if v is None else parse_duration(v)

    @field_validator("event")
    @classmethod
    def _event(cls, v):
        if v is not None and v not in EVENT_TYPES:
            raise ValueError(f"unknown event {v!r}{_did_you_mean(v, EVENT_TYPES)}; expected one of "
                             f"{', '.join(EVENT_TYPES)}")
        return v

    @model_validator(mode="after")
    def _one(self) -> "Audience":
        given = [n for n, v in (("winback", self.winback), ("segment", self.segment), ("event", self.event),
                                ("inactivity", self.inactivity)) if v]
        if len(given) != 1:
            raise ValueError("give exactly one trigger: winback, segment, event or inactivity"
                             + (f" (got {', '.join(given)})" if given else ""))
        return self

    @property
    def trigger(self) -> str:
        if self.winback:
            return "winback"
        if self.segment:
            return f"segment:{self.segment}"
        if self.event:
            return f"event:{self.event}"
        return "inactivity"


class Variant(_Strict):
    weight: float = Field(1.0, gt=0)
    subject: str | None = Field(None, description="subject variant key of the step's template")
    cta: str | None = Field(None, description="call-to-action variant key (templates read variant.cta)")
    offer: str | None = Field(None, description="offer key replacing the decided offer")


class Experiment(_Strict):
    """A/B/n test on one step: assignment is deterministic by hash of (campaign, experiment, customer)."""

    step: str | None = Field(None, description="the step it applies to (all steps when absent)")
    variants: dict[str, Variant] = Field(min_length=2)


class Budget(_Strict):
    amount_minor: int = Field(ge=0, description="expected offer cost this campaign may commit")
    currency: str | None = None


class CampaignSpec(_Strict):
    title: str
    sequence: str
    audience: Audience
    priority: int = Field(50, ge=0, le=1000, description="higher wins a frequency cap")
    holdout: float = Field(0.10, ge=0, lt=1, description="share kept as a control group (deterministic by hash)")
    budget: Budget | None = None
    offers: list[str] = Field(default_factory=list, description="offer candidates for non-winback audiences")
    experiments: dict[str, Experiment] = Field(default_factory=dict)
    enabled: bool = True
    topic: str | None = Field(None, pattern=KEY, description="the preference-centre topic of its messages "
                                                              "(offers, product_updates, surveys, tips); "
                                                              "default: by campaign key, else offers")
    reenroll_after: dt.timedelta | None = Field(None, description="allow a new enrollment this long after the "
                                                                  "last one ended (default: once per trigger)")

    @field_validator("reenroll_after", mode="before")
    @classmethod
    def _dur(cls, v):
        return None if v is None else parse_duration(v)


# ---------------------------------------------------------------------------------- the playbook


class PlaybookSpec(_Strict):
    name: str = Field(pattern=KEY)
    title: str
    description: str | None = None
    currency: str = "USD"
    offers: dict[str, Offer]
    strategies: dict[str, Strategy]
    rules: list[Rule] = Field(default_factory=list)
    campaigns: dict[str, CampaignSpec]
    sequences: dict[str, Sequence]
    fallbacks: dict[str, Localised] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _references(self) -> "PlaybookSpec":
        problems: list[tuple[str, str]] = []
        for group in ("offers", "campaigns", "sequences"):
            for key in getattr(self, group):
                if not KEY_PATTERN.match(key):
                    problems.append((f"{group}.{key}", "keys are 1-64 lower-case letters, digits or _"))
        for reason in self.strategies:
            if reason not in REASONS:
                problems.append((f"strategies.{reason}", f"unknown reason{_did_you_mean(reason, REASONS)}; "
                                                         f"expected one of {', '.join(REASONS)}"))

        def offer_ref(path: str, key: str) -> None:
            if key not in self.offers:
                problems.append((path, f"unknown offer {key!r}{_did_you_mean(key, self.offers)}"))

        def campaign_ref(path: str, key: str) -> None:
            if key not in self.campaigns:
                problems.append((path, f"unknown campaign {key!r}{_did_you_mean(key, self.campaigns)}"))

        for reason, strategy in self.strategies.items():
            campaign_ref(f"strategies.{reason}.campaign", strategy.campaign)
            for tier, keys in strategy.offers.items():
                for i, key in enumerate(keys):
                    offer_ref(f"strategies.{reason}.offers.{tier}[{i}]", key)
        for i, rule in enumerate(self.rules):
            if rule.strategy and rule.strategy not in self.strategies:
                problems.append((f"rules[{i}].strategy", f"unknown strategy {rule.strategy!r}"
                                                         f"{_did_you_mean(rule.strategy, self.strategies)}"))
            if rule.campaign:
                campaign_ref(f"rules[{i}].campaign", rule.campaign)
            for j, key in enumerate(rule.offers or ()):
                offer_ref(f"rules[{i}].offers[{j}]", key)
        for key, campaign in self.campaigns.items():
            if campaign.sequence not in self.sequences:
                problems.append((f"campaigns.{key}.sequence", f"unknown sequence {campaign.sequence!r}"
                                                              f"{_did_you_mean(campaign.sequence, self.sequences)}"))
            for j, offer in enumerate(campaign.offers):
                offer_ref(f"campaigns.{key}.offers[{j}]", offer)
            steps = {s.key for s in self.sequences[campaign.sequence].steps} \
                if campaign.sequence in self.sequences else set()
            for ek, exp in campaign.experiments.items():
                if exp.step and steps and exp.step not in steps:
                    problems.append((f"campaigns.{key}.experiments.{ek}.step",
                                     f"unknown step {exp.step!r}{_did_you_mean(exp.step, steps)}"))
                for vk, variant in exp.variants.items():
                    if variant.offer:
                        offer_ref(f"campaigns.{key}.experiments.{ek}.variants.{vk}.offer", variant.offer)
        names = list(self.rules)
        seen: set[str] = set()
        for i, rule in enumerate(names):
            if rule.name in seen:
                problems.append((f"rules[{i}].name", f"rule name {rule.name!r} is used twice"))
            seen.add(rule.name)
        if problems:
            raise _References(problems)
        return self

    # convenience ---------------------------------------------------------------------------
    def sequence_of(self, campaign_key: str) -> Sequence:
        return self.sequences[self.campaigns[campaign_key].sequence]

    def templates(self) -> set[str]:
        return {s.template for seq in self.sequences.values() for s in seq.steps if s.template}


# ---------------------------------------------------------------------------------- errors and loading


class PlaybookIssue(NamedTuple):
    path: str
    reason: str
    line: int | None = None

    def __str__(self) -> str:
        where = self.path or "(top)"
        if self.line is not None:
            where = f"line {self.line}, {where}"
        return f"{where}: {self.reason}"


class PlaybookError(WinbackError):
    """An invalid playbook: ``issues`` lists every problem with its place (and YAML line)."""

    exit_code = 2

    def __init__(self, issues: list[PlaybookIssue], file: str | None = None):
        self.issues = list(issues)
        self.file = file
        first = str(self.issues[0]) if self.issues else "invalid playbook"
        more = len(self.issues) - 1
        tail = f" (and {more} more problem{'s' if more > 1 else ''})" if more > 0 else ""
        super().__init__(f"playbook {file or ''}: {first}{tail}".replace("playbook :", "playbook:"))

    def as_dicts(self) -> list[dict]:
        return [{"file": self.file, "line": i.line, "path": i.path, "reason": i.reason} for i in self.issues]


class _References(ValueError):
    def __init__(self, problems: list[tuple[str, str]]):
        self.problems = problems
        super().__init__("; ".join(f"{p}: {r}" for p, r in problems))


def _did_you_mean(value: str, options) -> str:
    close = difflib.get_close_matches(str(value), [str(o) for o in options], n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _line_index(text: str) -> dict[tuple, int]:
    """Map each mapping key / sequence item path of a YAML document to its 1-based line."""
    lines: dict[tuple, int] = {}
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return lines

    def walk(node, path: tuple) -> None:
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                key = k.value
                lines[path + (key,)] = k.start_mark.line + 1
                walk(v, path + (key,))
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                lines[path + (i,)] = item.start_mark.line + 1
                walk(item, path + (i,))

    if root is not None:
        walk(root, ())
    return lines


def _path_text(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _path_tuple(text: str) -> tuple:
    parts: list = []
    for piece in re.findall(r"[^.\[\]]+|\[\d+\]", text):
        parts.append(int(piece[1:-1]) if piece.startswith("[") else piece)
    return tuple(parts)


def _nearest_line(lines: dict[tuple, int], loc: tuple) -> int | None:
    loc = tuple(loc)
    while loc:
        if loc in lines:
            return lines[loc]
        loc = loc[:-1]
    return None


def parse_playbook(data: Any, file: str | None = None, text: str | None = None) -> PlaybookSpec:
    """Validate a parsed playbook document; :class:`PlaybookError` lists every problem."""
    if not isinstance(data, dict):
        raise PlaybookError([PlaybookIssue("", "a playbook must be a mapping with name, title, offers, "
                                               "strategies, campaigns and sequences")], file)
    try:
        return PlaybookSpec.model_validate(data)
    except ValidationError as exc:
        lines = _line_index(text) if text else {}  # YAML lines only when there is a problem to place
        issues: list[PlaybookIssue] = []
        for e in exc.errors():
            loc = tuple(p for p in e["loc"] if not (isinstance(p, str) and p.startswith(("function-", "literal["))))
            ctx_err = (e.get("ctx") or {}).get("error")
            if isinstance(ctx_err, _References):
                for path, reason in ctx_err.problems:
                    issues.append(PlaybookIssue(path, reason, _nearest_line(lines, _path_tuple(path))))
                continue
            msg = e["msg"].removeprefix("Value error, ")
            if e["type"] == "extra_forbidden":
                msg = "unknown key"
                parent = loc[:-1]
                allowed = _allowed_keys(parent, data)
                if allowed:
                    msg += f"{_did_you_mean(str(loc[-1]), allowed)}; expected one of {', '.join(allowed)}"
            elif e["type"] == "missing":
                msg = "required"
            issues.append(PlaybookIssue(_path_text(loc), msg, _nearest_line(lines, loc)))
        if not any(_is_reference_reason(i.reason) for i in issues):
            # the reference check (a model validator) only runs when every field is valid: report the
            # broken references too, read from the raw document, so one run lists every problem
            known = {i.path for i in issues}
            for path, reason in _raw_reference_problems(data):
                if path not in known and not any(path.startswith(k + ".") or path.startswith(k + "[")
                                                 for k in known):
                    issues.append(PlaybookIssue(path, reason, _nearest_line(lines, _path_tuple(path))))
        raise PlaybookError(issues, file) from None


def _is_reference_reason(reason: str) -> bool:
    return reason.startswith(("unknown offer", "unknown campaign", "unknown sequence", "unknown strategy",
                              "unknown step"))


def _raw_reference_problems(data: dict) -> list[tuple[str, str]]:
    """Best-effort offer/campaign/sequence/strategy references of an unvalidated document."""
    def mapping(value) -> dict:
        return value if isinstance(value, dict) else {}

    def seq(value) -> list:
        return value if isinstance(value, list) else []

    offers, campaigns = mapping(data.get("offers")), mapping(data.get("campaigns"))
    sequences, strategies = mapping(data.get("sequences")), mapping(data.get("strategies"))
    problems: list[tuple[str, str]] = []

    def ref(path: str, key: Any, group: dict, what: str) -> None:
        if isinstance(key, str) and group and key not in group:
            problems.append((path, f"unknown {what} {key!r}{_did_you_mean(key, group)}"))

    for reason, strategy in strategies.items():
        strategy = mapping(strategy)
        ref(f"strategies.{reason}.campaign", strategy.get("campaign"), campaigns, "campaign")
        for tier, keys in mapping(strategy.get("offers")).items():
            for i, key in enumerate(seq(keys)):
                ref(f"strategies.{reason}.offers.{tier}[{i}]", key, offers, "offer")
    for i, rule in enumerate(seq(data.get("rules"))):
        rule = mapping(rule)
        ref(f"rules[{i}].strategy", rule.get("strategy"), strategies, "strategy")
        ref(f"rules[{i}].campaign", rule.get("campaign"), campaigns, "campaign")
        for j, key in enumerate(seq(rule.get("offers"))):
            ref(f"rules[{i}].offers[{j}]", key, offers, "offer")
    for key, campaign in campaigns.items():
        campaign = mapping(campaign)
        ref(f"campaigns.{key}.sequence", campaign.get("sequence"), sequences, "sequence")
        for j, offer in enumerate(seq(campaign.get("offers"))):
            ref(f"campaigns.{key}.offers[{j}]", offer, offers, "offer")
    return problems


def _allowed_keys(parent: tuple, data: Any) -> list[str]:
    """The keys a mapping at ``parent`` may hold (for 'did you mean')."""
    model: Any = PlaybookSpec
    for part in parent:
        if model is None:
            return []
        fields = getattr(model, "model_fields", None)
        if fields is None:
            return []
        if part in fields:
            model = _inner_model(fields[part].annotation)
        else:  # a dict key (offers.KEY) or list index
            model = model if isinstance(part, int) else model
    fields = getattr(model, "model_fields", None)
    return sorted(fields) if fields else []


def _inner_model(annotation: Any) -> Any:
    from typing import get_args

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def load_playbook_text(text: str, file: str | None = None) -> PlaybookSpec:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or "syntax error"
        raise PlaybookError([PlaybookIssue("", f"not valid YAML: {problem}", mark.line + 1 if mark else None)],
                            file) from None
    return parse_playbook(data, file, text)


def load_playbook_file(path: Path | str) -> PlaybookSpec:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PlaybookError([PlaybookIssue("", "file not found")], str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PlaybookError([PlaybookIssue("", f"cannot read the file: {exc}")], str(path)) from None
    return load_playbook_text(text, str(path))


BUILTIN_DIR = Path(__file__).with_name("builtin")


def builtin_playbook_path(name: str = "default") -> Path:
    return BUILTIN_DIR / f"{name}.yaml"
