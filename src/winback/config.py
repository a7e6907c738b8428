"""Settings and workspace discovery.

A workspace is a folder holding ``winback.toml``, the two stores and the playbooks/,
segments/, templates/ and reports/ folders. Settings come, strongest first, from
``WINBACK_*`` environment variables (nested with ``__``, e.g. ``WINBACK_INGEST__MAX_ERRORS``),
then ``winback.toml``, then the defaults below.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

from winback.kit.clock import Clock, FixedClock, SystemClock, parse_instant
from winback.kit.errors import ConfigError

CONFIG_FILE = "winback.toml"
WORKSPACE_DIRS = ("playbooks", "segments", "templates", "reports", "outbox")


class IngestSettings(BaseModel):
    max_errors: int = Field(200, ge=1, description="stop listing problems after this many")
    reject_formulas: bool = Field(True, description="reject text cells that a spreadsheet would run as a formula")
    future_tolerance_minutes: int = Field(10, ge=0, description="clock skew allowed for past-only timestamps")
    default_currency: str = "USD"


class HealthPenalties(BaseModel):
    """Points a health factor takes off the score of 100 (see :mod:`winback.analytics.health`).

    Graded factors (marked *) take up to this many points, in proportion to how bad the signal is.
    """

    cancel_scheduled: float = Field(60.0, ge=0, le=100, description="a cancellation is scheduled")
    payment_failed: float = Field(35.0, ge=0, le=100, description="a recent payment failed and is not recovered")
    purchase_lapse: float = Field(35.0, ge=0, le=100, description="no purchase for too long (see inactive_days)")
    logins_down: float = Field(25.0, ge=0, le=100, description="* logins down against the customer's baseline")
    feature_use_down: float = Field(20.0, ge=0, le=100, description="* feature use down against the baseline")
    no_recent_activity: float = Field(15.0, ge=0, le=100, description="no product activity for a while")
    card_expiring: float = Field(15.0, ge=0, le=100, description="the card on file expires soon (or has expired)")
    low_csat: float = Field(20.0, ge=0, le=100, description="* a low CSAT rating recently (1 of 5 = full)")
    unresolved_tickets: float = Field(8.0, ge=0, le=100, description="per unresolved ticket, up to max_counted_tickets")
    nps_detractor: float = Field(15.0, ge=0, le=100, description="* latest NPS answer a detractor (0 = full)")
    many_tickets: float = Field(5.0, ge=0, le=100, description="many tickets opened recently")
    low_p_alive: float = Field(40.0, ge=0, le=100, description="* P(alive) from the CLV models below the threshold")


class HealthSettings(BaseModel):
    """Health score, early-warning rules and the churn-risk model (``[health]`` in winback.toml)."""

    # windows of the behavioural features (winback.analytics.features)
    recent_days: int = Field(30, ge=1, description="engagement window: the last N days")
    baseline_days: int = Field(90, ge=1, description="baseline window: the N days before the recent window")
    min_baseline_days: int = Field(14, ge=1, description="no baseline when fewer days of it were observable")
    ticket_days: int = Field(90, ge=1, description="tickets / CSAT look-back")
    payment_failure_days: int = Field(30, ge=1, description="failed-payment look-back")
    # thresholds of the early-warning rules (winback.analytics.health)
    engagement_drop: float = Field(0.5, gt=0, le=1, description="flag a fall of at least this share against baseline")
    min_expected_events: float = Field(4.0, ge=0, description="judge a fall only when the baseline rate predicts "
                                                               "at least this many events in the recent window")
    card_expiry_days: int = Field(31, ge=0, description="flag cards whose last valid day is within N days (a month: "
                                                          "on Dec 31 a January card has 31 days left)")
    quiet_days: int = Field(14, ge=1, description="no product activity for N days (customers seen in product data)")
    inactive_days: int = Field(60, ge=1, description="a regular customer with no purchase for N days is flagged")
    regular_min_purchases: int = Field(3, ge=2, description="purchases that make a customer regular")
    purchase_overdue_ratio: float = Field(3.0, gt=1, description="flag when the gap since the last purchase is this "
                                                                 "many times the customer's median gap")
    min_lapse_days: int = Field(14, ge=0, description="never call a purchase overdue before this many days")
    low_csat_max: int = Field(2, ge=1, le=5, description="CSAT at or below this is low")
    nps_detractor_max: int = Field(6, ge=0, le=10, description="NPS at or below this is a detractor")
    nps_max_age_days: int = Field(365, ge=1, description="ignore NPS answers older than this")
    many_tickets: int = Field(3, ge=1, description="tickets in the look-back that count as many")
    max_counted_tickets: int = Field(3, ge=1, description="unresolved tickets counted for the penalty")
    p_alive_threshold: float = Field(0.5, gt=0, le=1, description="P(alive) below this is a factor")
    penalties: HealthPenalties = HealthPenalties()
    # bands: score >= healthy_min -> healthy; >= watch_min -> watch; else at_risk
    healthy_min: float = Field(70.0, ge=0, le=100)
    watch_min: float = Field(40.0, ge=0, le=100)
    max_factors: int = Field(3, ge=1, le=12, description="factors listed per customer")
    # churn-risk model (winback.analytics.churn_risk)
    churn_horizon_days: int = Field(90, ge=7, description="predict churn within this many days")
    churn_min_events: int = Field(50, ge=1, description="churn events needed in each window to train a model")
    churn_orders_active_days: int = Field(365, ge=1, description="shops: a customer with an order in the last N days "
                                                                 "is active")

    @model_validator(mode="after")
    def _bands_ordered(self) -> "HealthSettings":
        if self.watch_min > self.healthy_min:
            raise ValueError(f"watch_min ({self.watch_min}) must not exceed healthy_min ({self.healthy_min})")
        return self


class SenderSettings(BaseModel):
    """Who the messages come from (``[sender]``). Commercial messages always carry the postal address."""

    from_name: str = Field("winback", description="display name in From:")
    from_address: str = Field("hello@example.com", description="envelope sender and From: address")
    reply_to: str | None = Field(None, description="Reply-To: address (default: none)")
    postal_address: str = Field("winback, 1 Example Street, 10115 Berlin, Germany",
                                description="the sender's postal address, printed in every commercial message")
    base_url: str = Field("http://127.0.0.1:8000", description="public URL of `winback serve`: tracked links, "
                                                              "unsubscribe and survey pages")
    unsubscribe_mailto: str | None = Field(None, description="mailto: address for List-Unsubscribe (optional)")
    product_name: str = Field("winback", description="the product the messages talk about ([Product])")
    product_url: str = Field("https://example.com", description="the product's site: calls to action link here "
                                                               "(/reactivate, /book-session, /referral, /tutorials, "
                                                               "/checkout)")


class DeliverySettings(BaseModel):
    """The delivery engine (``[delivery]``): channel, SMTP, politeness rules, retries."""

    email_channel: str = Field("maildir", pattern="^(maildir|smtp)$",
                               description="maildir (embedded default: the workspace's outbox/ folder) or smtp")
    maildir: str = Field("outbox/maildir", description="the maildir folder, relative to the workspace")
    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(25, ge=1, le=65535)
    smtp_tls: str = Field("none", pattern="^(none|starttls|tls)$", description="none | starttls | tls (implicit)")
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_timeout_seconds: float = Field(30.0, gt=0)
    smtp_connections: int = Field(4, ge=1, le=64, description="concurrent SMTP connections per worker")
    smtp_ca_file: str | None = Field(None, description="CA bundle (PEM) trusted for TLS/STARTTLS (default: the "
                                                       "system's)")
    dkim_domain: str | None = Field(None, description="sign with DKIM for this domain (d=)")
    dkim_selector: str | None = Field(None, description="DKIM selector (s=)")
    dkim_private_key: str | None = Field(None, description="path to the PEM private key, relative to the workspace")
    webhook_url: str | None = Field(None, description="outbound webhook for CRM hand-off (the webhook channel)")
    webhook_secret: str | None = Field(None, description="HMAC-SHA256 key signing outbound webhooks")
    # politeness
    frequency_cap_messages: int = Field(2, ge=1, description="at most this many commercial messages per customer ...")
    frequency_cap_days: float = Field(7.0, gt=0, description="... in any window of this many days, all campaigns")
    quiet_hours_start: int = Field(21, ge=0, le=23, description="no commercial sends from this local hour ...")
    quiet_hours_end: int = Field(8, ge=0, le=23, description="... until this local hour (customer's time zone)")
    send_weekdays: str = Field("mon,tue,wed,thu,fri,sat,sun", description="local weekdays on which to send")
    default_timezone: str = Field("UTC", description="time zone of customers without one")
    rate_per_second: float = Field(0.0, ge=0, description="overall sending rate limit per worker (0: none)")
    warmup: bool = Field(False, description="ramp the daily volume of a new sending domain")
    warmup_schedule: list[int] = Field([50, 100, 200, 400, 800, 1500, 3000, 6000, 12000, 25000, 50000],
                                       description="messages allowed on day 1, 2, ...; the last value holds after")
    # retries and leases
    max_attempts: int = Field(8, ge=1, description="SMTP 4xx / connection errors: give up after this many tries")
    retry_base_seconds: float = Field(60.0, gt=0, description="first retry delay; doubles each time (with jitter)")
    retry_max_seconds: float = Field(6 * 3600.0, gt=0)
    lease_seconds: float = Field(300.0, gt=0, description="a claimed message returns to the queue after this")
    batch_size: int = Field(100, ge=1, le=10000, description="messages claimed per round")
    poll_seconds: float = Field(1.0, gt=0, description="an idle worker looks for due messages this often")


class TrackingSettings(BaseModel):
    """Opens, clicks, conversions and what the campaigns recovered (``[tracking]``)."""

    attribution_window_days: int = Field(14, ge=1, le=365, description="a conversion is attributed to the last "
                                         "message the customer received within this many days before it")
    holdout_window_days: int = Field(30, ge=1, le=365, description="holdout lift counts conversions within this "
                                     "many days after enrollment, in both arms")
    conversion_types: list[str] = Field(["returned", "resubscribed", "purchased", "payment_recovered",
                                         "coupon_redeemed"], description="customer event types that count as "
                                         "a conversion")
    cost_per_email_minor: int = Field(1, ge=0, description="sending cost per email, minor units (ROI)")
    cost_per_task_minor: int = Field(500, ge=0, description="cost of a phone-call task, minor units (ROI)")
    machine_open_seconds: float = Field(2.0, ge=0, description="an open this soon after delivery is a prefetch")
    confidence: float = Field(0.95, gt=0.5, lt=1, description="confidence level of the intervals")
    auto_rollout: bool = Field(False, description="roll out an experiment's winner to new enrollments once it is "
                               "significant (see rollout_*)")
    rollout_min_per_variant: int = Field(200, ge=10, description="sends per variant before a winner may be chosen")
    rollout_probability: float = Field(0.95, gt=0.5, lt=1, description="P(best) a winner needs")


RETRY_PRESETS: dict[str, list[float]] = {
    # DOMAIN.md step 10: retries 1, 3 and 7 days after the first failure
    "default": [1, 3, 7],
    # like Stripe's recommended Smart Retries setting: up to 8 tries within 2 weeks
    "eight_in_two_weeks": [1, 2, 4, 6, 8, 10, 12, 14],
}


class DunningSettings(BaseModel):
    """Failed payments: gateway, webhooks, retry policy, grace period, customer notices (``[dunning]``)."""

    gateway: str = Field("sandbox", pattern="^(sandbox|stripe)$", description="sandbox (offline, simulated issuers) "
                         "or stripe (the official SDK)")
    stripe_api_key: str | None = Field(None, description="Stripe secret key (or WINBACK_DUNNING__STRIPE_API_KEY)")
    stripe_api_base: str | None = Field(None, description="override Stripe's API address (tests, proxies)")
    stripe_webhook_secrets: list[str] = Field([], description="Stripe endpoint signing secrets (whsec_...); several "
                                              "while rolling a secret")
    standard_webhook_secrets: list[str] = Field([], description="Standard Webhooks secrets (whsec_<base64>) of "
                                                "other billing systems")
    webhook_tolerance_seconds: int = Field(300, ge=1, le=3600, description="reject signed webhooks older or newer "
                                           "than this")
    retry_schedule: str = Field("default", description="default (1, 3, 7 days), eight_in_two_weeks, or custom "
                                "(use retry_days)")
    retry_days: list[float] | None = Field(None, description="days after the first failure at which soft declines "
                                           "are retried (overrides retry_schedule)")
    quick_retry_base_seconds: float = Field(60.0, gt=0, description="gateway errors and timeouts: first retry after "
                                            "this; doubles each time")
    quick_retry_max_seconds: float = Field(3600.0, gt=0, description="... at most this long")
    quick_retry_limit: int = Field(5, ge=0, le=20, description="gateway errors in a row before falling back to the "
                                   "schedule")
    max_attempts_per_card: int = Field(10, ge=1, le=10, description="charges per card in any 30 days (card networks "
                                       "penalise more)")
    grace_days: float = Field(14.0, ge=0, description="access is kept this long after the first failure; the "
                              "subscription ends when retries are over and the grace period has passed")
    on_exhausted: str = Field("cancel", pattern="^(cancel|pause)$", description="cancel or pause the subscription "
                              "when dunning gives up")
    lookup_after_hours: float = Field(24.0, gt=0, description="retries later than this after the first attempt look "
                                      "the invoice up first instead of relying on the idempotency key")
    notices: bool = Field(True, description="e-mail the customer when a payment fails (sequence below)")
    notice_days: list[float] = Field([0, 3, 7], description="failed-payment e-mails: days after the first failure; "
                                     "a last notice goes out 2 days before the grace period ends")
    expiry_reminder_days: list[int] = Field([30, 15, 7], description="remind this many days before a card expires")
    card_link_days: int = Field(7, ge=1, le=60, description="card-update links expire after this many days")
    lease_seconds: float = Field(120.0, gt=0, description="a claimed case returns to the queue after this")
    timeout_seconds: float = Field(30.0, gt=0, description="gateway call timeout")

    def retry_offsets(self) -> list[float]:
        """Days after the first failure at which soft declines are retried, ascending."""
        if self.retry_days:
            days = self.retry_days
        else:
            if self.retry_schedule not in RETRY_PRESETS:
                raise ConfigError(f"[dunning] retry_schedule: {self.retry_schedule!r} is not one of "
                                  f"{', '.join(RETRY_PRESETS)} (or set retry_days)")
            days = RETRY_PRESETS[self.retry_schedule]
        if any(d <= 0 for d in days) or sorted(days) != list(days):
            raise ConfigError(f"[dunning] retry_days must be ascending and above 0, got {list(days)}")
        return [float(d) for d in days]


class WebSettings(BaseModel):
    """`winback serve` (``[web]``)."""

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    secure_cookies: bool | None = Field(None, description="Secure flag on cookies (default: when base_url is https)")
    session_hours: float = Field(12.0, gt=0, description="a login lasts this long")
    workers: int = Field(1, ge=1, le=64, description="uvicorn worker processes (PostgreSQL only)")


class Settings(BaseSettings):
    """Workspace settings. ``workspace`` is set by the loader, not read from the file."""

    model_config = SettingsConfigDict(env_prefix="WINBACK_", env_nested_delimiter="__", extra="forbid")

    name: str = "winback"
    state_url: str = "sqlite:///state.db"
    history_url: str = "duckdb:///history.duckdb"
    now: str | None = Field(None, description="pin the clock (ISO 8601) for reproducible runs")
    ingest: IngestSettings = IngestSettings()
    health: HealthSettings = HealthSettings()
    sender: SenderSettings = SenderSettings()
    delivery: DeliverySettings = DeliverySettings()
    tracking: TrackingSettings = TrackingSettings()
    web: WebSettings = WebSettings()
    dunning: DunningSettings = DunningSettings()
    secret_key: str | None = Field(None, description="signs links (unsubscribe, surveys, card update); "
                                                     "`winback init` writes a random one")
    workspace: Path = Path(".")

    @field_validator("now")
    @classmethod
    def _valid_now(cls, value: str | None) -> str | None:
        if value:
            try:
                parse_instant(value)
            except ValueError as exc:
                raise ValueError(f"now must be an ISO 8601 date or date-time, got {value!r}") from exc
        return value or None

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_file = os.environ.get("_WINBACK_TOML_FILE")
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if toml_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_file))
        return tuple(sources)

    # --- resolved locations -------------------------------------------------------------
    @property
    def resolved_state_url(self) -> str:
        return _resolve_file_url(self.state_url, self.workspace)

    @property
    def resolved_history_url(self) -> str:
        return _resolve_file_url(self.history_url, self.workspace)

    @property
    def history_path(self) -> Path:
        url = self.resolved_history_url
        if not url.startswith("duckdb:///"):
            raise ConfigError(f"history_url {self.history_url!r}: only duckdb:///FILE is supported for writing")
        return Path(url.removeprefix("duckdb:///"))

    def signing_key(self) -> bytes:
        if not self.secret_key:
            raise ConfigError("secret_key is not set in winback.toml (it signs unsubscribe and tracking links); "
                              "add secret_key = \"<a long random string>\"")
        return self.secret_key.encode("utf-8")

    def clock(self) -> Clock:
        return FixedClock(parse_instant(self.now)) if self.now else SystemClock()


def _resolve_file_url(url: str, base: Path) -> str:
    """Make a relative ``sqlite:///x.db`` or ``duckdb:///x.duckdb`` path relative to the workspace."""
    for prefix in ("sqlite:///", "duckdb:///"):
        if url.startswith(prefix):
            path = url.removeprefix(prefix)
            if path and path != ":memory:" and not Path(path).is_absolute():
                return prefix + str((base / path).resolve())
    return url


def load_settings(workspace: Path | str = ".", require: bool = True, **overrides: Any) -> Settings:
    """Read the workspace's settings; ``require`` demands that ``winback.toml`` exists."""
    root = Path(workspace).expanduser().resolve()
    toml_path = root / CONFIG_FILE
    if require and not toml_path.is_file():
        raise ConfigError(f"no workspace at {root} ({CONFIG_FILE} not found); run `winback init {root}` first")
    previous = os.environ.get("_WINBACK_TOML_FILE")
    try:
        if toml_path.is_file():
            os.environ["_WINBACK_TOML_FILE"] = str(toml_path)
        else:
            os.environ.pop("_WINBACK_TOML_FILE", None)
        try:
            settings = Settings(**overrides)
        except Exception as exc:  # pydantic ValidationError or TOML syntax
            raise ConfigError(f"invalid settings in {toml_path}: {_one_line(exc)}") from exc
    finally:
        if previous is None:
            os.environ.pop("_WINBACK_TOML_FILE", None)
        else:
            os.environ["_WINBACK_TOML_FILE"] = previous
    settings.workspace = root
    return settings


def _one_line(exc: Exception) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        try:
            parts = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in errors()]
            return "; ".join(parts)
        except Exception:  # pragma: no cover
            pass
    return " ".join(str(exc).split())


DEFAULT_TOML = """\
# winback workspace settings. Any key can be overridden by an environment variable:
# WINBACK_STATE_URL, WINBACK_HISTORY_URL, WINBACK_INGEST__MAX_ERRORS, ...
name = "{name}"

# State store (customers, consent, campaigns, outbox ...): a SQLite file by default,
# or a PostgreSQL URL in production, e.g. "postgresql+psycopg://user@host:5432/winback".
state_url = "{state_url}"

# History store (the facts, for analytics): a DuckDB file.
history_url = "duckdb:///history.duckdb"

# Signs unsubscribe, tracking and survey links. Keep it secret; changing it voids old links.
secret_key = "{secret_key}"

# Pin the clock for reproducible runs (ISO 8601), or leave unset for the real time.
# now = "2025-12-31T23:59:59Z"

[ingest]
max_errors = 200           # problems listed before the report stops
reject_formulas = true     # refuse text cells starting with =, +, -, @ (spreadsheet formula injection)
future_tolerance_minutes = 10
default_currency = "USD"

[sender]
from_name = "{name}"
from_address = "hello@example.com"
postal_address = "{name}, 1 Example Street, 10115 Berlin, Germany"   # printed in every commercial message
base_url = "http://127.0.0.1:8000"   # where `winback serve` is reachable: unsubscribe, tracking, surveys

[delivery]
email_channel = "maildir"   # maildir (writes to outbox/maildir) or smtp
# smtp_host = "127.0.0.1"
# smtp_port = 587
# smtp_tls = "starttls"     # none | starttls | tls
frequency_cap_messages = 2  # commercial messages per customer ...
frequency_cap_days = 7      # ... per rolling window, across all campaigns
quiet_hours_start = 21      # customer's local time
quiet_hours_end = 8

[tracking]
attribution_window_days = 14   # a conversion counts for the last message within this many days
holdout_window_days = 30       # holdout lift: conversions within this many days of enrollment, both arms
cost_per_email_minor = 1       # ROI: sending cost per email (minor units)
auto_rollout = false           # roll out a significant A/B winner to new enrollments

[web]
host = "127.0.0.1"
port = 8000
"""


def today(settings: Settings) -> dt.date:
    return settings.clock().now().date()
