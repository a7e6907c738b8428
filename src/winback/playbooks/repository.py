"""All SQL of the playbooks stage on the state store (SQLAlchemy Core; SQLite and PostgreSQL).

* playbook versions: a new row only when the YAML's content hash differs from the newest
  version of that name; the newest is the active one;
* campaigns: one row per campaign key of the active playbook (``sync_campaigns``);
* customer facts for decisions (customers + customer_scores + segment memberships);
* budget state (committed expected cost per campaign, offers given per campaign);
* coupons (the locking and the conditional updates behind :mod:`winback.playbooks.coupons`).

Functions take a ``Connection`` inside the caller's transaction and never commit.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections import defaultdict
from typing import Iterable

from sqlalchemy import Connection, func, insert, select, update

from winback.kit.errors import WinbackError
from winback.models.campaigns import Campaign, Coupon, Enrollment, PlaybookVersion
from winback.models.customer import Customer
from winback.models.scores import CustomerScore
from winback.models.segments import Segment, SegmentMembership
from winback.playbooks.budgets import BudgetState
from winback.playbooks.facts import CustomerFacts, facts_from_record
from winback.playbooks.spec import PlaybookSpec, load_playbook_text

VERSIONS = PlaybookVersion.__table__
CAMPAIGNS = Campaign.__table__
ENROLLMENTS = Enrollment.__table__
COUPONS = Coupon.__table__
CUSTOMERS = Customer.__table__
SCORES = CustomerScore.__table__
SEGMENTS = Segment.__table__
MEMBERSHIPS = SegmentMembership.__table__

CHUNK = 5_000


def _is_postgres(conn: Connection) -> bool:
    return conn.dialect.name == "postgresql"


def content_hash(text: str) -> str:
    """SHA-256 of the YAML text with normalised line endings and no trailing blank space at the end."""
    normal = text.replace("\r\n", "\n").replace("\r", "\n").rstrip() + "\n"
    return hashlib.sha256(normal.encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------------- versions


def save_playbook_version(conn: Connection, spec_text: str, origin: str, now: dt.datetime,
                          file: str | None = None) -> tuple[str, int, bool]:
    """Validate and record the YAML; ``(name, version, created)``. A new version (which becomes the
    active one) is created only when the content hash differs from the newest version's."""
    spec = load_playbook_text(spec_text, file)  # PlaybookError when invalid: nothing is saved
    name = spec.name
    digest = content_hash(spec_text)
    newest_q = (select(VERSIONS.c.id, VERSIONS.c.version, VERSIONS.c.content_hash, VERSIONS.c.active)
                .where(VERSIONS.c.name == name).order_by(VERSIONS.c.version.desc()))
    if _is_postgres(conn):
        newest_q = newest_q.with_for_update()
    newest = conn.execute(newest_q).first()
    if newest is not None and newest.content_hash == digest:
        if not newest.active:
            _activate(conn, name, newest.id)
        return name, newest.version, False
    version = 1 if newest is None else newest.version + 1
    new_id = conn.execute(insert(VERSIONS).values(name=name, version=version, origin=origin, content=spec_text,
                                                  content_hash=digest, active=False, created_at=now)
                          .returning(VERSIONS.c.id)).scalar_one()
    _activate(conn, name, new_id)
    return name, version, True


def _activate(conn: Connection, name: str, version_id: int) -> None:
    conn.execute(update(VERSIONS).where(VERSIONS.c.name == name, VERSIONS.c.id != version_id,
                                        VERSIONS.c.active.is_(True)).values(active=False))
    conn.execute(update(VERSIONS).where(VERSIONS.c.id == version_id).values(active=True))


def version_with_hash(conn: Connection, name: str, digest: str) -> int | None:
    """The newest version of ``name`` whose content hash is ``digest`` (None: not saved)."""
    return conn.execute(select(func.max(VERSIONS.c.version)).where(VERSIONS.c.name == name,
                                                                   VERSIONS.c.content_hash == digest)).scalar()


def active_version_row(conn: Connection, name: str) -> dict | None:
    row = conn.execute(select(VERSIONS).where(VERSIONS.c.name == name, VERSIONS.c.active.is_(True))
                       .order_by(VERSIONS.c.version.desc())).mappings().first()
    return dict(row) if row else None


def active_playbook(conn: Connection, name: str = "default") -> tuple[PlaybookSpec, int]:
    """The active version of the named playbook, parsed."""
    row = active_version_row(conn, name)
    if row is None:
        raise WinbackError(f"no playbook named {name!r} has been saved in this workspace yet; "
                           f"run `winback playbook show` to load it")
    return load_playbook_text(row["content"], f"{name} (version {row['version']})"), int(row["version"])


def playbook_version(conn: Connection, name: str, version: int) -> tuple[PlaybookSpec, dict]:
    row = conn.execute(select(VERSIONS).where(VERSIONS.c.name == name, VERSIONS.c.version == version)
                       ).mappings().first()
    if row is None:
        raise WinbackError(f"playbook {name!r} has no version {version}")
    return load_playbook_text(row["content"], f"{name} (version {version})"), dict(row)


def list_versions(conn: Connection, name: str | None = None) -> list[dict]:
    q = select(VERSIONS.c.name, VERSIONS.c.version, VERSIONS.c.origin, VERSIONS.c.content_hash,
               VERSIONS.c.active, VERSIONS.c.created_at).order_by(VERSIONS.c.name, VERSIONS.c.version)
    if name is not None:
        q = q.where(VERSIONS.c.name == name)
    return [dict(r) for r in conn.execute(q).mappings()]


# --------------------------------------------------------------------------------- campaigns


def _campaign_values(spec: PlaybookSpec, key: str, version: int) -> dict:
    c = spec.campaigns[key]
    sequence = spec.sequences[c.sequence]
    return dict(title=c.title, sequence=c.sequence, playbook_name=spec.name, playbook_version=version,
                status="active" if c.enabled else "paused", category=sequence.category, priority=c.priority,
                holdout_share=float(c.holdout), budget_minor=c.budget.amount_minor if c.budget else None,
                currency=((c.budget.currency if c.budget and c.budget.currency else spec.currency) or "").upper()
                or None,
                spec=json.dumps(c.model_dump(mode="json"), ensure_ascii=False, sort_keys=True))


def _stored_enabled(row) -> bool | None:
    try:
        return bool(json.loads(row["spec"] or "{}").get("enabled", True))
    except (ValueError, AttributeError):
        return None


def sync_campaigns(conn: Connection, spec: PlaybookSpec, version: int, now: dt.datetime) -> dict[str, list[str]]:
    """One ``campaigns`` row per campaign key of the playbook: insert new ones, update changed ones
    (status follows ``enabled`` when that flag changes: active or paused), archive those no longer in the playbook. Rows that
    already match are not touched. The committed budget cost is kept."""
    rows = {r.key: r for r in conn.execute(select(CAMPAIGNS)).mappings()}
    outcome: dict[str, list[str]] = {"created": [], "updated": [], "archived": [], "unchanged": []}
    for key in spec.campaigns:
        values = _campaign_values(spec, key, version)
        row = rows.get(key)
        if row is None:
            conn.execute(insert(CAMPAIGNS).values(key=key, committed_cost_minor=0, created_at=now, updated_at=now,
                                                  **values))
            outcome["created"].append(key)
            continue
        # a pause or resume made through the API/dashboard survives a re-plan: the status follows the
        # playbook's ``enabled`` only when that flag changed (or the campaign comes back from archived)
        if row["status"] != "archived" and _stored_enabled(row) == spec.campaigns[key].enabled:
            values["status"] = row["status"]
        if any(row[k] != v for k, v in values.items()):
            conn.execute(update(CAMPAIGNS).where(CAMPAIGNS.c.id == row["id"]).values(updated_at=now, **values))
            outcome["updated"].append(key)
        else:
            outcome["unchanged"].append(key)
    for key, row in rows.items():
        if key not in spec.campaigns and row["status"] != "archived":
            conn.execute(update(CAMPAIGNS).where(CAMPAIGNS.c.id == row["id"]).values(status="archived",
                                                                                     updated_at=now))
            outcome["archived"].append(key)
    return outcome


def campaign_rows(conn: Connection) -> list[dict]:
    return [dict(r) for r in conn.execute(select(CAMPAIGNS).order_by(CAMPAIGNS.c.key)).mappings()]


def campaign_ids(conn: Connection) -> dict[str, int]:
    return {r.key: r.id for r in conn.execute(select(CAMPAIGNS.c.key, CAMPAIGNS.c.id))}


def load_budget_state(conn: Connection, spec: PlaybookSpec) -> BudgetState:
    """Budgets from the playbook; committed cost from ``campaigns``; offers given per campaign from the
    treatment enrollments."""
    committed = {r.key: int(r.committed_cost_minor or 0)
                 for r in conn.execute(select(CAMPAIGNS.c.key, CAMPAIGNS.c.committed_cost_minor))}
    counts: dict[str, dict[str, int]] = defaultdict(dict)
    q = (select(CAMPAIGNS.c.key, ENROLLMENTS.c.offer_key, func.count().label("n"))
         .select_from(ENROLLMENTS.join(CAMPAIGNS, CAMPAIGNS.c.id == ENROLLMENTS.c.campaign_id))
         .where(ENROLLMENTS.c.arm == "treatment", ENROLLMENTS.c.offer_key.is_not(None))
         .group_by(CAMPAIGNS.c.key, ENROLLMENTS.c.offer_key))
    for r in conn.execute(q):
        counts[r.key][r.offer_key] = int(r.n)
    return BudgetState.from_playbook(spec, committed, counts)


def add_committed_cost(conn: Connection, campaign_key: str, cost_minor: int, now: dt.datetime) -> None:
    """Add an expected offer cost to a campaign's committed total (atomic on both backends)."""
    conn.execute(update(CAMPAIGNS).where(CAMPAIGNS.c.key == campaign_key)
                 .values(committed_cost_minor=CAMPAIGNS.c.committed_cost_minor + int(cost_minor), updated_at=now))


# --------------------------------------------------------------------------------- customer facts


def load_facts(conn: Connection, customer_ids: Iterable[int] | None = None) -> list[CustomerFacts]:
    """Facts of the given customers (all customers when None), in id order; customers without scores
    get facts with unknown reason, tier and value."""
    ids = None if customer_ids is None else sorted({int(i) for i in customer_ids})
    out: list[CustomerFacts] = []
    chunks = [None] if ids is None else [ids[i:i + CHUNK] for i in range(0, len(ids), CHUNK)]
    for chunk in chunks:
        q = (select(CUSTOMERS.c.id, CUSTOMERS.c.external_id, CUSTOMERS.c.email, CUSTOMERS.c.phone,
                    CUSTOMERS.c.locale, CUSTOMERS.c.country, CUSTOMERS.c.plan_id, CUSTOMERS.c.marketing_basis,
                    CUSTOMERS.c.marketing_opt_out, SCORES.c.status, SCORES.c.churn_reason, SCORES.c.value_tier,
                    SCORES.c.persona, SCORES.c.suggested_channel, SCORES.c.p_return,
                    SCORES.c.value_after_return_minor, SCORES.c.expected_clv_12m_minor, SCORES.c.mrr_minor,
                    SCORES.c.currency, SCORES.c.tenure_days, SCORES.c.requested_features,
                    SCORES.c.reason_confidence)
             .select_from(CUSTOMERS.outerjoin(SCORES, SCORES.c.customer_id == CUSTOMERS.c.id))
             .order_by(CUSTOMERS.c.id))
        mq = (select(MEMBERSHIPS.c.customer_id, SEGMENTS.c.name)
              .select_from(MEMBERSHIPS.join(SEGMENTS, SEGMENTS.c.id == MEMBERSHIPS.c.segment_id)))
        if chunk is not None:
            if not chunk:
                continue
            q = q.where(CUSTOMERS.c.id.in_(chunk))
            mq = mq.where(MEMBERSHIPS.c.customer_id.in_(chunk))
        segments: dict[int, set[str]] = defaultdict(set)
        for m in conn.execute(mq):
            segments[m.customer_id].add(m.name)
        for r in conn.execute(q).mappings():
            out.append(facts_from_record(r, segments.get(r["id"], ())))
    return out


def customer_id_by_external(conn: Connection, external_id: str, source: str | None = None) -> int | None:
    q = select(CUSTOMERS.c.id).where(CUSTOMERS.c.external_id == external_id)
    if source is not None:
        q = q.where(CUSTOMERS.c.source == source)
    ids = [r.id for r in conn.execute(q.limit(2))]
    if len(ids) > 1:
        raise WinbackError(f"external id {external_id!r} exists in more than one source; name the source")
    return ids[0] if ids else None


# --------------------------------------------------------------------------------- coupons


def lock_customer(conn: Connection, customer_id: int) -> None:
    """Serialise coupon changes of one customer until the transaction ends: a row lock on PostgreSQL
    (SELECT ... FOR UPDATE), the database write lock on SQLite (a no-op UPDATE, taken before any read
    so the snapshot that follows is the newest)."""
    if _is_postgres(conn):
        found = conn.execute(select(CUSTOMERS.c.id).where(CUSTOMERS.c.id == customer_id).with_for_update()).first()
    else:
        found = conn.execute(update(CUSTOMERS).where(CUSTOMERS.c.id == customer_id)
                             .values(updated_at=CUSTOMERS.c.updated_at)).rowcount
    if not found:
        raise WinbackError(f"no customer with id {customer_id}")


def expire_customer_coupons(conn: Connection, customer_id: int, now: dt.datetime) -> int:
    return conn.execute(update(COUPONS).where(COUPONS.c.customer_id == customer_id, COUPONS.c.status == "active",
                                              COUPONS.c.expires_at <= now).values(status="expired")).rowcount


def expire_coupons(conn: Connection, now: dt.datetime) -> int:
    """Mark every active coupon past its expiry as expired; the number marked."""
    return conn.execute(update(COUPONS).where(COUPONS.c.status == "active", COUPONS.c.expires_at <= now)
                        .values(status="expired")).rowcount


def active_coupons(conn: Connection, customer_id: int) -> list[dict]:
    q = (select(COUPONS).where(COUPONS.c.customer_id == customer_id, COUPONS.c.status == "active")
         .order_by(COUPONS.c.value_minor.desc(), COUPONS.c.id.desc()))
    return [dict(r) for r in conn.execute(q).mappings()]


def code_exists(conn: Connection, code: str) -> bool:
    return conn.execute(select(COUPONS.c.id).where(COUPONS.c.code == code)).first() is not None


def insert_coupon(conn: Connection, **values) -> dict:
    new_id = conn.execute(insert(COUPONS).values(**values).returning(COUPONS.c.id)).scalar_one()
    return coupon_by_id(conn, new_id)


def coupon_by_id(conn: Connection, coupon_id: int) -> dict:
    return dict(conn.execute(select(COUPONS).where(COUPONS.c.id == coupon_id)).mappings().one())


def coupon_by_code(conn: Connection, code: str) -> dict | None:
    row = conn.execute(select(COUPONS).where(COUPONS.c.code == code)).mappings().first()
    return dict(row) if row else None


def mark_replaced(conn: Connection, coupon_ids: list[int], replaced_by_id: int) -> None:
    if coupon_ids:
        conn.execute(update(COUPONS).where(COUPONS.c.id.in_(coupon_ids), COUPONS.c.status == "active")
                     .values(status="replaced", replaced_by_id=replaced_by_id))


def redeem_if_active(conn: Connection, code: str, now: dt.datetime) -> bool:
    """Atomically mark an active, unexpired coupon redeemed; False when it was not (any more)."""
    return conn.execute(update(COUPONS).where(COUPONS.c.code == code, COUPONS.c.status == "active",
                                              COUPONS.c.expires_at > now)
                        .values(status="redeemed", redeemed_at=now)).rowcount == 1


def mark_expired(conn: Connection, coupon_id: int) -> None:
    conn.execute(update(COUPONS).where(COUPONS.c.id == coupon_id, COUPONS.c.status == "active")
                 .values(status="expired"))
