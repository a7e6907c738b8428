"""The REST API's request and response shapes (pydantic), so that ``/openapi.json`` is precise.

Strings that reach SQL are checked for NUL characters (PostgreSQL text cannot hold them: a bad
request must be a 422, never a 500).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from winback.playbooks.spec import EVENT_TYPES

# --------------------------------------------------------------------------------- shared


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


Text = Annotated[str, AfterValidator(_no_nul)]

#: event types the campaigns react to (triggers, exit conditions) plus what products commonly send;
#: any other ``^[a-z][a-z0-9_.]{0,63}$`` name is accepted as a custom type
KNOWN_EVENT_TYPES = tuple(sorted({*EVENT_TYPES, "login", "feature_used", "resubscribed", "payment_succeeded",
                                  "subscription_started", "trial_started"}))
EVENT_TYPE_RE = re.compile(r"^[a-z][a-z0-9_.]{0,63}$")
MAX_PROPERTIES_BYTES = 16 * 1024
MAX_BATCH = 500
MAX_FUTURE = dt.timedelta(minutes=10)
MAX_AGE = dt.timedelta(days=400)


class Problem(BaseModel):
    """Every error answer: ``detail`` says what was wrong (a string, or FastAPI's list of field errors)."""

    detail: str | list[dict[str, Any]]


class Page(BaseModel):
    next_cursor: str | None = Field(None, description="Pass as `cursor` to get the next page; null on the last page.")
    limit: int


# --------------------------------------------------------------------------------- customers


class CustomerSummary(BaseModel):
    id: int = Field(description="The internal customer id (`customers.id`).")
    source: str
    external_id: str
    email: str | None = None
    name: str | None = None
    company: str | None = None
    locale: str | None = None
    timezone: str | None = None
    country: str | None = None
    plan_id: str | None = None
    marketing_basis: str
    marketing_opt_out: bool
    status: str | None = Field(None, description="Lifecycle status from the latest analysis.")
    value_tier: str | None = None
    churn_reason: str | None = None
    priority_rank: int | None = None
    health_band: str | None = None


class CustomerPage(Page):
    items: list[CustomerSummary]


class CustomerRecord(CustomerSummary):
    phone: str | None = None
    created_at: dt.datetime | None = None
    opted_out_at: dt.datetime | None = None
    attributes: dict[str, Any] | None = None
    first_seen_at: dt.datetime
    updated_at: dt.datetime


class SegmentMembershipOut(BaseModel):
    name: str
    title: str
    entered_at: dt.datetime
    version: int


class EnrollmentOut(BaseModel):
    id: int
    campaign: str
    customer_id: int | None = None
    customer: str | None = Field(None, description="The customer's external id (campaign views).")
    arm: str
    status: str
    exit_reason: str | None = None
    strategy: str | None = None
    offer_key: str | None = None
    variants: dict[str, Any] = {}
    next_step: int
    next_due_at: dt.datetime | None = None
    enrolled_at: dt.datetime
    finished_at: dt.datetime | None = None


class EventOut(BaseModel):
    event_id: str
    type: str
    occurred_at: dt.datetime
    received_at: dt.datetime
    source: str
    properties: dict[str, Any] | None = None


class MessageOut(BaseModel):
    id: int
    campaign: str | None = None
    step: int | None = None
    channel: str
    category: str
    variant: str | None = None
    subject: str | None = None
    to_address: str | None = None
    status: str
    status_reason: str | None = None
    due_at: dt.datetime
    sent_at: dt.datetime | None = None


class TrackingOut(BaseModel):
    kind: str
    message_id: int | None = None
    campaign: str | None = None
    machine: bool
    link: str | None = None
    occurred_at: dt.datetime


class TimelineEntry(BaseModel):
    at: dt.datetime
    kind: Literal["event", "enrollment", "message", "tracking", "segment"]
    summary: str


class CustomerDetail(BaseModel):
    customer: CustomerRecord
    scores: dict[str, Any] | None = Field(None, description="The latest analysis' per-customer scores "
                                                            "(`customer_scores`), null before any analysis.")
    segments: list[SegmentMembershipOut]
    enrollments: list[EnrollmentOut]
    events: list[EventOut]
    messages: list[MessageOut]
    tracking: list[TrackingOut]
    timeline: list[TimelineEntry] = Field(description="Everything above, newest first.")


# --------------------------------------------------------------------------------- segments


class SegmentOut(BaseModel):
    name: str
    title: str
    origin: str
    defined: bool
    version: int | None = None
    member_count: int | None = None
    refreshed_at: dt.datetime | None = None
    as_of: dt.datetime | None = None
    refresh_error: str | None = None


class SegmentMember(BaseModel):
    customer_id: int
    source: str
    external_id: str
    email: str | None = None
    name: str | None = None
    entered_at: dt.datetime
    version: int


class SegmentDetail(SegmentOut):
    description: str | None = None
    spec: dict[str, Any] | None = None
    members: list[SegmentMember]
    next_cursor: str | None = None
    limit: int


# --------------------------------------------------------------------------------- campaigns


class CampaignOut(BaseModel):
    key: str
    title: str
    status: str = Field(description="active | paused | archived")
    sequence: str
    priority: int
    holdout_share: float
    budget_minor: int | None = None
    committed_cost_minor: int
    playbook_version: int
    enrolled: int = Field(description="Treatment enrollments.")
    held_out: int
    enrollments: dict[str, int] = Field(description="`arm:status` -> count.")
    messages: dict[str, int] = Field(description="Outbox status -> count.")


class EnrollmentBreakdown(BaseModel):
    strategy: str | None = None
    offer_key: str | None = None
    arm: str
    status: str
    count: int


class CampaignDetail(CampaignOut):
    category: str
    currency: str | None = None
    breakdown: list[EnrollmentBreakdown]
    recent_enrollments: list[EnrollmentOut]


# --------------------------------------------------------------------------------- suppressions

SuppressionReason = Literal["unsubscribed", "hard_bounce", "complaint", "objected", "no_lawful_basis", "manual"]


class SuppressionOut(BaseModel):
    address: str
    scope: str
    reason: str
    customer_id: int | None = None
    source: str
    detail: str | None = None
    created_at: dt.datetime


class SuppressionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    address: Annotated[Text, Field(min_length=3, max_length=320)]
    reason: SuppressionReason = "manual"
    scope: Literal["all", "commercial"] = "all"
    detail: Annotated[Text, Field(max_length=2000)] | None = None


class SuppressionResult(BaseModel):
    address: str
    scope: str
    created: bool = Field(description="False when the address already was suppressed in that scope.")


class RemovedResult(BaseModel):
    address: str
    removed: int


# --------------------------------------------------------------------------------- events


class CustomerRef(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: Annotated[Text, Field(min_length=1, max_length=255, description="The customer's external id.")]
    source: Annotated[Text, Field(min_length=1, max_length=64, description="Needed when the same external id "
                                                                           "exists in several sources.")] | None = None
    email: Annotated[Text, Field(max_length=320, description="Only used with `create: true`.")] | None = None


class EventIn(BaseModel):
    """One fact about a customer (track). Idempotent by ``event_id``."""

    model_config = ConfigDict(extra="forbid")

    event_id: Annotated[Text, Field(min_length=1, max_length=255)]
    type: Annotated[str, Field(min_length=1, max_length=64, description=(
        "One of the types campaigns react to (" + ", ".join(KNOWN_EVENT_TYPES) + ") or a custom type "
        "matching `^[a-z][a-z0-9_.]{0,63}$`."))]
    customer: CustomerRef | None = None
    customer_id: Annotated[int, Field(ge=1, le=2 ** 31 - 1, description="The internal id, instead of `customer`.")
                           ] | None = None
    occurred_at: dt.datetime = Field(description="ISO 8601 with a time zone; at most 10 minutes in the future "
                                                 "and 400 days in the past.")
    properties: dict[str, Any] = Field(default_factory=dict, description="At most 16 KB as JSON.")
    create: bool = Field(False, description="Create a minimal customer record when `customer` is unknown "
                                            "(the next import of that customer overwrites it).")

    @field_validator("type")
    @classmethod
    def _type(cls, v: str) -> str:
        if not EVENT_TYPE_RE.match(v):
            raise ValueError("must be lower case letters, digits, '_' or '.', starting with a letter "
                             "(at most 64 characters)")
        return v

    @field_validator("occurred_at")
    @classmethod
    def _aware(cls, v: dt.datetime) -> dt.datetime:
        if v.tzinfo is None or v.utcoffset() is None:
            raise ValueError("needs a time zone (e.g. 2026-01-15T12:00:00Z)")
        return v.astimezone(dt.timezone.utc)

    @model_validator(mode="after")
    def _who(self) -> "EventIn":
        if (self.customer is None) == (self.customer_id is None):
            raise ValueError("give exactly one of `customer` (external id) or `customer_id` (internal id)")
        if self.create and self.customer is None:
            raise ValueError("`create` needs `customer` (an external id and optional source)")
        return self


class EventBatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    events: Annotated[list[EventIn], Field(min_length=1, max_length=MAX_BATCH)]


class EventAck(BaseModel):
    event_id: str
    duplicate: bool = Field(description="True when this event id was already stored with the same content "
                                        "(nothing changed).")
    customer_id: int | None = None


class EventBatchItem(BaseModel):
    index: int
    event_id: str
    status: Literal["stored", "duplicate", "conflict", "rejected"]
    customer_id: int | None = None
    detail: str | None = None


class EventBatchAck(BaseModel):
    stored: int
    duplicates: int
    rejected: int = Field(description="Conflicts (same id, different content) and unknown customers.")
    items: list[EventBatchItem]


class IdentifyIn(BaseModel):
    """Contact fields of a customer (identify). Only the fields given are changed."""

    model_config = ConfigDict(extra="forbid")

    customer: CustomerRef
    email: Annotated[Text, Field(max_length=320)] | None = None
    name: Annotated[Text, Field(max_length=500)] | None = None
    company: Annotated[Text, Field(max_length=500)] | None = None
    phone: Annotated[Text, Field(max_length=32)] | None = None
    locale: Annotated[Text, Field(pattern=r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})*$", max_length=35)] | None = None
    timezone: Annotated[Text, Field(max_length=64)] | None = None
    country: Annotated[Text, Field(pattern=r"^[A-Za-z]{2}$")] | None = None
    marketing_consent: bool | None = Field(None, description=(
        "true: the customer gave consent (basis `consent`); false: no basis. Ignored while opted out."))
    unsubscribed: Literal[True] | None = Field(None, description="true opts the customer out of marketing; an "
                                                                 "opt-out is never lifted through this endpoint.")
    create: bool = Field(False, description="Create the customer when unknown.")

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str | None) -> str | None:
        if v is None:
            return v
        from zoneinfo import ZoneInfo

        try:
            ZoneInfo(v)
        except (KeyError, ValueError, OSError):
            raise ValueError(f"unknown IANA time zone {v!r}") from None
        return v


class IdentifyAck(BaseModel):
    customer_id: int
    created: bool
    changed: list[str] = Field(description="The fields that changed.")
    ignored: list[str] = Field(default_factory=list, description="Fields not applied, with the reason.")
