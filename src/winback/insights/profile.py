"""The customer profile: one row per customer with every score and insight, the table segments query.

``winback analyze`` builds it (analytics scores + insights) and writes it into the history store
as ``customer_profile`` (DuckDB, columnar: segment refreshes scan it in milliseconds) and the
per-customer columns the web app needs into the state store's ``customer_scores``.

:data:`PROFILE_SCHEMA` is the contract between the stages: segments compile conditions against
these columns, priorities and campaigns read them. Money columns are integer minor units of
``currency``; list columns are Arrow lists of strings; JSON columns are text.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

PROFILE_TABLE = "customer_profile"

#: name -> (Arrow type, description)
PROFILE_COLUMNS: dict[str, tuple[pa.DataType, str]] = {
    # identity and contact (from the customers history table)
    "source": (pa.string(), "the data source of the customer record"),
    "customer_id": (pa.string(), "the customer's id in its source"),
    "customer_ref": (pa.int64(), "customers.id in the state store (null until the customer is there)"),
    "email": (pa.string(), ""),
    "name": (pa.string(), ""),
    "company": (pa.string(), ""),
    "phone": (pa.string(), ""),
    "locale": (pa.string(), "BCP 47, e.g. en, ja, zh-Hant"),
    "country": (pa.string(), "ISO 3166-1 alpha-2"),
    "timezone": (pa.string(), "IANA zone"),
    "plan_id": (pa.string(), "current or last plan"),
    "created_at": (pa.timestamp("us"), ""),
    "marketing_basis": (pa.string(), "consent | soft_opt_in | none"),
    "marketing_opt_out": (pa.bool_(), ""),
    "attributes": (pa.string(), "any other properties, a JSON object as text"),
    # lifecycle
    "status": (pa.string(), "active | churned (subscription ended) | lost (buyer with P(alive) < 0.5) | "
                            "trial_only (trial never converted) | prospect (never bought)"),
    "churned_at": (pa.timestamp("us"), "when the last paying spell ended (or the trial ended, for trial_only)"),
    "tenure_days": (pa.int64(), "length of the last paying spell"),
    "mrr_minor": (pa.int64(), "current MRR, or the MRR lost at churn"),
    "currency": (pa.string(), "ISO 4217"),
    "involuntary": (pa.bool_(), "the churn followed a failed payment"),
    "reactivated": (pa.bool_(), "came back after an earlier churn"),
    # why they left
    "reason": (pa.string(), "price | missing_feature | usability | support | competitor | other | "
                            "involuntary | unknown"),
    "reason_confidence": (pa.float64(), "0-1"),
    "reason_evidence": (pa.string(), "JSON list of {source, value, reason} that decided the reason"),
    "stated_reason_code": (pa.string(), "the cancellation code as the billing system gave it"),
    "requested_features": (pa.list_(pa.string()), "feature keys the customer asked for (events, surveys)"),
    "persona": (pa.string(), "commerce persona: bouncer | passive_browser | cart_abandoner | "
                             "one_time_low_aov | one_time_high_aov | repeat_buyer"),
    # behaviour and value
    "recency_days": (pa.int64(), "days since the last purchase or payment"),
    "frequency": (pa.int64(), "purchases or payments"),
    "monetary_minor": (pa.int64(), "total spent"),
    "r_score": (pa.int64(), "1-5"),
    "f_score": (pa.int64(), "1-5"),
    "m_score": (pa.int64(), "1-5"),
    "rfm_segment": (pa.string(), ""),
    "p_alive": (pa.float64(), "BG/NBD probability the buyer is still active"),
    "expected_clv_12m_minor": (pa.int64(), "discounted expected value over the next 12 months"),
    "historical_clv_minor": (pa.int64(), "the brief's formula: value x purchases x lifespan"),
    "lost_value_minor": (pa.int64(), "churned: the value they would have brought"),
    "lost_value_rank": (pa.int64(), "1 = most valuable lost customer"),
    "value_tier": (pa.string(), "low | mid | high | top, by value among customers of the same status"),
    "last_seen_at": (pa.timestamp("us"), "latest product event, order or payment"),
    # early warning (active customers)
    "days_since_last_purchase": (pa.float64(), ""),
    "typical_gap_days": (pa.float64(), "the customer's own median gap between purchases"),
    "health_score": (pa.float64(), "0-100, higher is healthier"),
    "health_band": (pa.string(), "healthy | watch | at_risk"),
    "health_factors": (pa.list_(pa.string()), "top contributing factors in plain words"),
    "churn_risk": (pa.float64(), "model probability of churning in the next 90 days"),
    # win-back
    "p_return": (pa.float64(), "calibrated probability the churned customer returns"),
    "value_after_return_minor": (pa.int64(), "expected value if they return"),
    "recoverable_value_minor": (pa.int64(), "p_return x value_after_return"),
    "priority_rank": (pa.int64(), "1 = the churned customer with the highest recoverable value"),
    "suggested_channel": (pa.string(), "email | phone | retargeting | none"),
}

PROFILE_SCHEMA = pa.schema([pa.field(name, typ) for name, (typ, _doc) in PROFILE_COLUMNS.items()])


def empty_profile() -> pa.Table:
    return PROFILE_SCHEMA.empty_table()


def conform(table: pa.Table) -> pa.Table:
    """Add missing profile columns as nulls, order and cast them as :data:`PROFILE_SCHEMA`."""
    n = table.num_rows
    arrays = []
    for field in PROFILE_SCHEMA:
        if field.name in table.column_names:
            column = table.column(field.name)
            if pa.types.is_integer(field.type) and pa.types.is_floating(column.type):
                column = pc.round(column)  # e.g. recency in fractional days -> whole days
            arrays.append(column.cast(field.type))
        else:
            arrays.append(pa.nulls(n, field.type))
    return pa.Table.from_arrays(arrays, schema=PROFILE_SCHEMA)


def write_profile(con, table: pa.Table) -> None:
    """Replace ``customer_profile`` in a writable DuckDB connection with ``table`` (conformed)."""
    data = conform(table)
    con.register("_profile_in", data)
    try:
        con.execute(f'CREATE OR REPLACE TABLE "{PROFILE_TABLE}" AS SELECT * FROM _profile_in')
    finally:
        con.unregister("_profile_in")
