"""Playbooks as a service: load the workspace's playbook (or the shipped default), record its
version, keep the ``campaigns`` rows in step, and decide for customers.

The active playbook is ``<workspace>/playbooks/<name>.yaml`` when that file exists (validated:
an invalid file raises :class:`~winback.playbooks.spec.PlaybookError` naming the file, line and
path, and nothing is saved), else the shipped ``builtin/<name>.yaml``. Each load saves a new
version only when the text changed (:func:`repository.save_playbook_version`) and syncs the
campaign rows (:func:`repository.sync_campaigns`), in one transaction.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import yaml
from sqlalchemy import Engine

from winback.config import Settings
from winback.kit.db import checked_engine
from winback.kit.errors import WinbackError
from winback.playbooks import repository as repo
from winback.playbooks.decide import Decision, decide
from winback.playbooks.spec import (REASONS, PlaybookError, PlaybookIssue, PlaybookSpec, builtin_playbook_path,
                                    load_playbook_text)

SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class PlaybookSource:
    name: str
    origin: str  # builtin | workspace
    path: Path
    text: str


def workspace_dir(settings: Settings) -> Path:
    return Path(settings.workspace) / "playbooks"


def workspace_file(settings: Settings, name: str = "default") -> Path | None:
    for suffix in SUFFIXES:
        path = workspace_dir(settings) / f"{name}{suffix}"
        if path.is_file():
            return path
    return None


def read_source(settings: Settings, name: str = "default") -> tuple[PlaybookSource, PlaybookSpec]:
    """The playbook's text and parsed spec: the workspace file when present, else the shipped one."""
    path = workspace_file(settings, name)
    origin = "workspace"
    if path is None:
        path, origin = builtin_playbook_path(name), "builtin"
        if not path.is_file():
            raise WinbackError(f"no playbook named {name!r}: neither {workspace_dir(settings) / (name + '.yaml')} "
                               f"nor a shipped one exists")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PlaybookError([PlaybookIssue("", f"cannot read the file: {exc}")], str(path)) from None
    spec = load_playbook_text(text, str(path))
    if spec.name != name:
        line = _name_line(text)
        raise PlaybookError([PlaybookIssue("name", f"the playbook in {path.name} must be named {name!r} "
                                                   f"(found {spec.name!r})", line)], str(path))
    return PlaybookSource(name, origin, path, text), spec


def _name_line(text: str) -> int | None:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return None
    for k, _ in getattr(root, "value", []) or []:
        if getattr(k, "value", None) == "name":
            return k.start_mark.line + 1
    return None


def state_engine(settings: Settings) -> Engine:
    """An engine on the state store, checked to hold the playbook tables (migration 0005)."""
    return checked_engine(settings.resolved_state_url, repo.VERSIONS.name, "playbook")


@dataclass(frozen=True)
class LoadedPlaybook:
    spec: PlaybookSpec
    version: int
    created: bool  # a new version was saved by this load
    origin: str
    path: Path
    campaigns: dict[str, list[str]]  # sync outcome: created / updated / archived / unchanged


def load_active(settings: Settings, name: str = "default", *, now: dt.datetime | None = None,
                engine: Engine | None = None) -> LoadedPlaybook:
    """Read, validate, version and sync the playbook (one transaction); the details."""
    source, spec = read_source(settings, name)
    now = now or settings.clock().now()
    own = engine is None
    engine = engine if engine is not None else state_engine(settings)
    try:
        with engine.begin() as conn:
            _, version, created = repo.save_playbook_version(conn, source.text, source.origin, now, str(source.path))
            outcome = repo.sync_campaigns(conn, spec, version, now)
    finally:
        if own:
            engine.dispose()
    return LoadedPlaybook(spec, version, created, source.origin, source.path, outcome)


def load_playbook(settings: Settings, name: str = "default", *, engine: Engine | None = None,
                  record: bool = True) -> tuple[PlaybookSpec, int]:
    """``(spec, version)`` of the active playbook; records a new version when the text changed and syncs
    the campaign rows. ``record=False`` writes nothing: the version is that of a saved version with the
    same text, or 0 when this text has not been saved yet."""
    if record:
        loaded = load_active(settings, name, engine=engine)
        return loaded.spec, loaded.version
    source, spec = read_source(settings, name)
    own = engine is None
    engine = engine if engine is not None else state_engine(settings)
    try:
        with engine.connect() as conn:
            version = repo.version_with_hash(conn, name, repo.content_hash(source.text))
    finally:
        if own:
            engine.dispose()
    return spec, version or 0


def versions(settings: Settings, name: str | None = None) -> list[dict]:
    engine = state_engine(settings)
    try:
        with engine.connect() as conn:
            return repo.list_versions(conn, name)
    finally:
        engine.dispose()


def decide_for(settings: Settings, customer_ids: list[int] | None = None, *, campaign_key: str | None = None,
               name: str = "default", commit_budget: bool = False) -> list[Decision]:
    """Decisions for the customers (all when None) under the active playbook and the campaigns' budgets.

    The budget state is updated in memory as decisions are made (each decision sees what the previous
    ones committed); ``commit_budget`` also persists the committed cost to ``campaigns``."""
    spec, _ = load_playbook(settings, name)
    now = settings.clock().now()
    engine = state_engine(settings)
    try:
        with engine.begin() as conn:
            budgets = repo.load_budget_state(conn, spec)
            decisions = []
            for facts in repo.load_facts(conn, customer_ids):
                d = decide(spec, facts, budgets, campaign_key=campaign_key)
                budgets.commit(d)
                if commit_budget and d.campaign_key and d.offer_cost_minor and not d.excluded:
                    repo.add_committed_cost(conn, d.campaign_key, d.offer_cost_minor, now)
                decisions.append(d)
    finally:
        engine.dispose()
    return decisions


def explain_customer(settings: Settings, external_id: str, *, campaign_key: str | None = None,
                     name: str = "default") -> Decision:
    """The decision for one customer by external id (nothing is committed)."""
    engine = state_engine(settings)
    try:
        with engine.connect() as conn:
            customer_id = repo.customer_id_by_external(conn, external_id)
    finally:
        engine.dispose()
    if customer_id is None:
        raise WinbackError(f"no customer with external id {external_id!r}")
    return decide_for(settings, [customer_id], campaign_key=campaign_key, name=name)[0]


def _strategy_row(spec: PlaybookSpec, reason: str) -> dict:
    key = reason if reason in spec.strategies else ("unknown" if "unknown" in spec.strategies else None)
    s = spec.strategies.get(key) if key else None
    if s is None:
        return {"reason": reason, "strategy": None, "title": None, "message": None, "campaign": None, "offers": {},
                "channel": None}
    return {"reason": reason, "strategy": key, "title": s.title, "message": s.message.get("en"),
            "campaign": s.campaign, "offers": s.offers, "channel": s.channel}


def summary(spec: PlaybookSpec) -> dict:
    """A JSON-ready summary: strategies (reason -> strategy -> offers by tier -> campaign), offers, campaigns."""
    def offer_terms(o) -> dict:
        return {k: v for k, v in o.model_dump(mode="json", exclude={"title", "lift"}).items()
                if v not in (None, False) or k == "coupon"}

    return {
        "name": spec.name,
        "title": spec.title,
        "currency": spec.currency,
        "strategies": [_strategy_row(spec, reason) for reason in REASONS],
        "rules": [{"name": r.name, "when": r.when.model_dump(mode="json", exclude_none=True), "strategy": r.strategy,
                   "campaign": r.campaign, "offers": r.offers, "exclude": r.exclude, "note": r.note}
                  for r in spec.rules],
        "offers": [{"key": k, "kind": o.kind, "title": o.title.get("en"), "terms": offer_terms(o), "lift": o.lift}
                   for k, o in spec.offers.items()],
        "campaigns": [{"key": k, "title": c.title, "trigger": c.audience.trigger, "sequence": c.sequence,
                       "steps": [s.key for s in spec.sequences[c.sequence].steps],
                       "category": spec.sequences[c.sequence].category, "priority": c.priority,
                       "holdout": c.holdout, "budget_minor": c.budget.amount_minor if c.budget else None,
                       "offers": c.offers, "experiments": sorted(c.experiments), "enabled": c.enabled}
                      for k, c in spec.campaigns.items()],
    }
