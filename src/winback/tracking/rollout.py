"""Roll out the winner of an A/B/n experiment to new enrollments.

An experiment has a winner when every variant has at least ``rollout_min_per_variant`` messages
sent, the arm sizes show no sample-ratio mismatch, and one variant's posterior probability of
being best reaches ``rollout_probability`` - on conversions, or on human clicks per message while
no variant has converted anyone yet (the result says which ``metric``); see
:func:`winback.tracking.results.judge_experiment`.

With ``[tracking] auto_rollout = true`` (or ``apply=True``) the winner is written to
``experiment_decisions`` (``decided_by = "auto"``, the numbers in ``stats``). The planner
(:func:`winback.campaigns.planner.assign_experiment_variants`) then gives every *new* enrollment
the winner; enrollments that exist keep the variant they were assigned, so the experiment's
data stay as they were. A decision is never overwritten by this job (delete it to re-open).
"""

from __future__ import annotations

import datetime as dt
import json

from sqlalchemy import Engine

from winback.kit.db import make_engine, write_transaction
from winback.tracking import repository as repo
from winback.tracking.results import campaign_results


def evaluate_experiments(settings, *, now: dt.datetime | None = None, engine: Engine | None = None,
                         apply: bool | None = None) -> list[dict]:
    """One entry per campaign experiment: its statistics, winner, and whether a decision was written."""
    now = now or settings.clock().now()
    apply = settings.tracking.auto_rollout if apply is None else apply
    own = engine is None
    engine = engine or make_engine(settings.resolved_state_url)
    try:
        results = campaign_results(settings, now=now, engine=engine)
        out: list[dict] = []
        for c in results["campaigns"]:
            sends = {}
            for v in c["variants"]:
                sends.setdefault(v["experiment"], {})[v["variant"]] = v["sent"]
            for exp in c["experiments"]:
                entry = {"campaign": c["key"], "campaign_id": c["id"], **exp,
                         "sent": sends.get(exp["experiment"], {}), "decided": False, "reason": None}
                if exp["rolled_out"]:
                    entry["reason"] = f"already rolled out: {exp['rolled_out']}"
                elif exp["winner"] is None:
                    entry["reason"] = _why_not(exp, entry["sent"], settings.tracking)
                elif not apply:
                    entry["reason"] = "winner found; auto_rollout is off (use --apply or [tracking] auto_rollout)"
                else:
                    stats = {k: exp[k] for k in ("metric", "prob_best", "p_value", "srm")}
                    stats["sent"] = entry["sent"]
                    with write_transaction(engine) as conn:
                        entry["decided"] = repo.save_decision(conn, {
                            "campaign_id": c["id"], "experiment": exp["experiment"], "winner": exp["winner"],
                            "stats": json.dumps(stats, sort_keys=True, default=str), "decided_by": "auto",
                            "decided_at": now})
                    entry["rolled_out"] = exp["winner"] if entry["decided"] else None
                    entry["reason"] = "rolled out" if entry["decided"] else "decided concurrently"
                out.append(entry)
        return out
    finally:
        if own:
            engine.dispose()


def _why_not(exp: dict, sent: dict, t) -> str:
    if len(exp["variants"]) < 2:
        return "fewer than two variants"
    low = [v for v in exp["variants"] if sent.get(v, 0) < t.rollout_min_per_variant]
    if low:
        return f"not enough sends yet ({', '.join(low)} below {t.rollout_min_per_variant})"
    if exp["srm"]["mismatch"]:
        return f"sample-ratio mismatch (p = {exp['srm']['p_value']:.2g}): check the assignment before trusting it"
    best = max(exp["prob_best"].values()) if exp["prob_best"] else 0.0
    return f"no variant is best with P >= {t.rollout_probability} on {exp['metric']} (best {best:.3f})"
