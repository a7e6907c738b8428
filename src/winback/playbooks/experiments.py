"""Deterministic holdout and A/B/n assignment by hash (pure).

A customer's arm and variants depend only on the campaign key, the experiment key and the
customer's key (their external id, or id), never on time or order of arrival, so re-running a
plan, another worker or another process assigns the same. Each assignment hashes its own
domain-separated message with SHA-256 and maps the first 8 bytes to a uniform number in [0, 1):

* holdout:  sha256("holdout" | campaign | customer)
* variant:  sha256("variant" | campaign | experiment | customer)

Different prefixes and experiment keys give independent uniforms, so the holdout is independent
of every experiment and experiments are independent of each other (tests check this on 100k ids).
Variants are laid out on [0, 1) in sorted key order, each taking a share equal to its weight over
the total, so reordering the YAML does not move anyone.
"""

from __future__ import annotations

import hashlib
from typing import Any, Mapping

SEPARATOR = "\x1f"
DEFAULT_HOLDOUT_SHARE = 0.10


def unit_hash(*parts: Any) -> float:
    """A uniform number in [0, 1) from the parts (stable across runs, machines and Python versions)."""
    message = SEPARATOR.join(str(p) for p in parts).encode("utf-8")
    return int.from_bytes(hashlib.sha256(message).digest()[:8], "big") / 2.0 ** 64


def holdout_arm(campaign_key: str, customer_key: str | int, share: float = DEFAULT_HOLDOUT_SHARE) -> str:
    """``holdout`` for about ``share`` of customers (the control group), else ``treatment``."""
    if not 0.0 <= share < 1.0:
        raise ValueError(f"holdout share must be in [0, 1), got {share}")
    return "holdout" if unit_hash("holdout", campaign_key, customer_key) < share else "treatment"


def _weight(value: Any) -> float:
    weight = float(getattr(value, "weight", value))
    if not weight > 0:
        raise ValueError(f"variant weights must be positive, got {weight}")
    return weight


def assign_variant(campaign_key: str, experiment_key: str, customer_key: str | int,
                   variants: Mapping[str, Any]) -> str:
    """The variant key for this customer; ``variants`` maps key -> weight (or an object with ``weight``)."""
    if not variants:
        raise ValueError("an experiment needs at least one variant")
    keys = sorted(variants)
    weights = [_weight(variants[k]) for k in keys]
    point = unit_hash("variant", campaign_key, experiment_key, customer_key) * sum(weights)
    acc = 0.0
    for key, weight in zip(keys, weights):
        acc += weight
        if point < acc:
            return key
    return keys[-1]  # float rounding at the very top


def assign_variants(campaign_key: str, experiments: Mapping[str, Any], customer_key: str | int) -> dict[str, str]:
    """``{experiment key: variant key}`` for every experiment of a campaign (spec ``Experiment`` objects)."""
    return {key: assign_variant(campaign_key, key, customer_key, exp.variants) for key, exp in experiments.items()}
