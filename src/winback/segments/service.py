"""Segments as a service: refresh the materialised memberships, preview, show, list and save specs.

``refresh`` evaluates each segment on the history (a read-only DuckDB connection to
``customer_profile`` and the facts), then applies the difference to ``segment_memberships`` in one
state-store transaction per segment. A segment that fails (invalid file, unknown or cyclic
reference, an error while evaluating) records the error on its row and in
``segment_refreshes``, keeps its previous members, and does not stop the others.
"""

from __future__ import annotations

import datetime as dt
import difflib
import json
import shutil
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from sqlalchemy import Engine

from winback.config import Settings
from winback.history.store import open_history
from winback.insights.profile import PROFILE_TABLE
from winback.kit.clock import as_utc
from winback.kit.db import checked_engine
from winback.kit.errors import WinbackError
from winback.segments import repository as repo
from winback.segments.builtin import Catalog, load_catalog, spec_files, workspace_dir
from winback.segments.compiler import CompiledSegment, compile_segment, spec_hash
from winback.segments.schemas import PreviewResult, RefreshOutcome, SegmentDefinition, SegmentInfo
from winback.segments.spec import SPEC_SUFFIXES, SegmentSpec, SpecError, plain_value, load_spec_file, read_spec_document

SAMPLE_COLUMNS = ("email", "name", "status", "reason", "persona", "value_tier", "lost_value_minor", "currency",
                  "churned_at", "health_band")

Progress = Callable[[str, int, int], None]


# --------------------------------------------------------------------------------- catalog


def catalog(settings: Settings) -> Catalog:
    """Built-in segments overlaid with the workspace's ``segments/`` files."""
    return load_catalog(settings.workspace)


def definition(settings: Settings, name: str, cat: Catalog | None = None) -> SegmentDefinition:
    cat = cat or catalog(settings)
    found = cat.get(name)
    if found is not None:
        return found
    problem = cat.problem_for(name)
    if problem is not None:
        raise WinbackError(problem.error)
    raise WinbackError(f"unknown segment {name!r}{_did_you_mean(name, cat.names())}; "
                       f"`winback segments list` shows them")


def _did_you_mean(word: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _instant(settings: Settings, as_of: dt.datetime | None) -> tuple[dt.datetime, dt.datetime]:
    """(now, as_of), both aware UTC."""
    now = settings.clock().now()
    return now, as_utc(as_of) if as_of is not None else now


def _state_engine(settings: Settings) -> Engine:
    """An engine on the state store, checked to hold the segment tables (migration 0003)."""
    return checked_engine(settings.resolved_state_url, repo.SEGMENTS.name, "segment")


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if isinstance(exc, WinbackError) else f"{type(exc).__name__}: {text}"[:500]


def _spec_text(d: SegmentDefinition) -> str:
    document = d.document if d.document is not None else d.spec.data()
    return json.dumps(document, ensure_ascii=False, default=plain_value)


# --------------------------------------------------------------------------------- history


class _History:
    """A read-only connection to the history, checked to hold a customer profile."""

    def __init__(self, settings: Settings):
        self._cm = open_history(settings.history_path, read_only=True)
        self.con = self._cm.__enter__()
        try:
            found = self.con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = ?",
                                     [PROFILE_TABLE]).fetchone()[0]
        except Exception:
            self.close()
            raise
        if not found:
            self.close()
            raise WinbackError(f"the history has no {PROFILE_TABLE} table yet; run `winback analyze` first")

    def close(self) -> None:
        self._cm.__exit__(None, None, None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def members(self, compiled: CompiledSegment) -> tuple[list[int], list[tuple[str, str]]]:
        """(customer_ref of the selected rows, (source, customer_id) of those without one)."""
        table = _arrow(self.con.execute(*compiled.refs_query()))
        refs = table.column("customer_ref")
        if refs.null_count == 0:
            return refs.to_numpy().tolist(), []
        ids, keys = [], []
        for source, customer_id, ref in zip(table.column("source").to_pylist(),
                                            table.column("customer_id").to_pylist(), refs.to_pylist()):
            if ref is None:
                keys.append((source, customer_id))
            else:
                ids.append(ref)
        return ids, keys

    def count(self, compiled: CompiledSegment) -> int:
        return int(self.con.execute(*compiled.count_query()).fetchone()[0])

    def sample(self, compiled: CompiledSegment, limit: int) -> list[dict]:
        cursor = self.con.execute(*compiled.sample_query(limit, SAMPLE_COLUMNS))
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row)) for row in cursor.fetchall()]


def _arrow(result):
    fetch = getattr(result, "to_arrow_table", None) or result.fetch_arrow_table  # duckdb >= 1.4 / older
    return fetch()


# --------------------------------------------------------------------------------- refresh


def refresh(settings: Settings, names: Sequence[str] | None = None, as_of: dt.datetime | None = None,
            progress: Progress | None = None) -> list[RefreshOutcome]:
    """Re-evaluate the named segments (default: all) and apply the membership changes."""
    now, as_of = _instant(settings, as_of)
    cat = catalog(settings)
    if names:
        unknown = [n for n in names if cat.get(n) is None and cat.problem_for(n) is None]
        if unknown:
            raise WinbackError(f"unknown segment {unknown[0]!r}{_did_you_mean(unknown[0], cat.names())}")
        targets = list(dict.fromkeys(names))
        nameless = []
    else:
        targets = cat.names()
        nameless = [p for p in cat.problems if not p.name]
    outcomes: list[RefreshOutcome] = [
        RefreshOutcome(name=Path(p.file).name, ok=False, as_of=as_of, error=p.error) for p in nameless]
    engine = _state_engine(settings)
    try:
        with _History(settings) as history:
            for i, name in enumerate(targets):
                if progress:
                    progress(name, i, len(targets))
                outcomes.append(_refresh_one(engine, history, cat, name, now, as_of))
            if progress:
                progress("", len(targets), len(targets))
    finally:
        engine.dispose()
    return outcomes


def _refresh_one(engine: Engine, history: _History, cat: Catalog, name: str, now: dt.datetime,
                 as_of: dt.datetime) -> RefreshOutcome:
    started = time.perf_counter()
    d = cat.get(name)
    if d is None:  # a workspace file that does not load: record the error on the existing row, if any
        error = cat.problem_for(name).error
        with engine.begin() as conn:
            row = repo.segment_by_name(conn, name)
            if row is not None:
                seg = repo.SegmentRow(row["id"], name, row["version"], row["spec_hash"], row["member_count"])
                repo.record_refresh(conn, seg, as_of=as_of, now=now, seconds=0.0, error=error)
        return RefreshOutcome(name=name, ok=False, version=row["version"] if row else None,
                              member_count=row["member_count"] if row else None, as_of=as_of, error=error)
    compiled = None
    error = None
    refs: list[int] = []
    keys: list[tuple[str, str]] = []
    try:
        compiled = compile_segment(d.spec, as_of, cat.specs)
        refs, keys = history.members(compiled)
    except Exception as exc:  # noqa: BLE001 - one segment's failure must not stop the others
        error = _one_line(exc)
    query_seconds = time.perf_counter() - started
    definition_values = dict(
        name=name, title=d.spec.title, description=d.spec.description, origin=d.origin, spec_text=_spec_text(d),
        spec_hash=compiled.spec_hash if compiled else spec_hash(d.spec.match),
        compiled_sql=compiled.sql if compiled else None, now=now)
    diff = None
    if error is None:
        try:
            with engine.begin() as conn:
                seg = repo.upsert_definition(conn, **definition_values)
                diff = repo.apply_members(conn, seg, refs, keys, as_of)
                repo.record_refresh(conn, seg, as_of=as_of, now=now, seconds=time.perf_counter() - started,
                                    diff=diff)
        except Exception as exc:  # noqa: BLE001
            error = _one_line(exc)
            diff = None
    if error is not None:
        with engine.begin() as conn:
            seg = repo.upsert_definition(conn, **definition_values)
            repo.record_refresh(conn, seg, as_of=as_of, now=now, seconds=time.perf_counter() - started,
                                error=error)
    seconds = time.perf_counter() - started
    if diff is None:
        return RefreshOutcome(name=name, ok=False, version=seg.version, member_count=seg.member_count, as_of=as_of,
                              seconds=seconds, query_seconds=query_seconds, error=error)
    return RefreshOutcome(name=name, ok=True, version=seg.version, member_count=diff.member_count,
                          entered=diff.entered, exited=diff.exited, unmatched=diff.unmatched, as_of=as_of,
                          seconds=seconds, query_seconds=query_seconds)


# --------------------------------------------------------------------------------- preview / show / list


def _spec_for(settings: Settings, spec_or_name: SegmentSpec | str | Path, cat: Catalog) -> tuple[SegmentSpec, dict]:
    """(spec, resolver) for a spec object, a segment name, or a spec file path."""
    specs = cat.specs
    if isinstance(spec_or_name, SegmentSpec):
        spec = spec_or_name
    elif isinstance(spec_or_name, Path) or str(spec_or_name).lower().endswith(SPEC_SUFFIXES):
        spec = load_spec_file(spec_or_name)
    else:
        spec = definition(settings, str(spec_or_name), cat).spec
    specs[spec.name] = spec
    return spec, specs


def preview(settings: Settings, spec_or_name: SegmentSpec | str | Path, limit: int = 20,
            as_of: dt.datetime | None = None) -> PreviewResult:
    """Who the segment selects right now: count, a sample and the SQL. Writes nothing."""
    _, as_of = _instant(settings, as_of)
    cat = catalog(settings)
    spec, specs = _spec_for(settings, spec_or_name, cat)
    compiled = compile_segment(spec, as_of, specs)
    with _History(settings) as history:
        count = history.count(compiled)
        sample = history.sample(compiled, max(int(limit), 0)) if limit else []
    return PreviewResult(name=spec.name, as_of=as_of, count=count, sample=sample, sql=compiled.sql,
                         params=compiled.params)


def show(settings: Settings, name: str, as_of: dt.datetime | None = None) -> dict:
    """A segment's definition, compiled SQL and parameters, current count and stored state."""
    _, as_of = _instant(settings, as_of)
    cat = catalog(settings)
    d = definition(settings, name, cat)
    compiled = compile_segment(d.spec, as_of, cat.specs)
    result: dict[str, Any] = {
        "name": d.name, "title": d.spec.title, "description": d.spec.description, "origin": d.origin,
        "path": str(d.path) if d.path else None, "spec": json.loads(_spec_text(d)), "canonical": d.spec.data(),
        "as_of": as_of, "sql": compiled.sql, "params": compiled.params, "spec_hash": compiled.spec_hash,
    }
    try:
        with _History(settings) as history:
            result["count"] = history.count(compiled)
    except WinbackError as exc:
        result["count"], result["count_error"] = None, str(exc)
    engine = _state_engine(settings)
    try:
        with engine.connect() as conn:
            row = repo.segment_by_name(conn, name)
            result["state"] = None if row is None else {
                k: row[k] for k in ("version", "member_count", "refreshed_at", "as_of", "refresh_error",
                                    "refresh_seconds", "spec_hash")}
            if row is not None:
                result["state"]["stale"] = row["spec_hash"] != compiled.spec_hash
                result["refreshes"] = repo.refreshes(conn, row["id"], limit=10)
    finally:
        engine.dispose()
    return result


def list_segments(settings: Settings) -> list[SegmentInfo]:
    """Every segment of the catalog (and any the state store still holds), with its stored state."""
    cat = catalog(settings)
    engine = _state_engine(settings)
    try:
        with engine.connect() as conn:
            rows = {r["name"]: r for r in repo.all_segments(conn)}
    finally:
        engine.dispose()
    out = []
    for name in sorted({*cat.names(), *rows}):
        d, row, problem = cat.get(name), rows.get(name), cat.problem_for(name)
        info = SegmentInfo(
            name=name,
            title=d.spec.title if d else (row["title"] if row else name),
            origin=d.origin if d else (("workspace" if problem else row["origin"]) if (problem or row) else "?"),
            defined=d is not None,
        )
        if row is not None:
            info = info.model_copy(update=dict(version=row["version"], member_count=row["member_count"],
                                               refreshed_at=row["refreshed_at"], as_of=row["as_of"],
                                               refresh_error=row["refresh_error"]))
        if problem is not None:
            info = info.model_copy(update=dict(refresh_error=problem.error))
        elif d is None:
            info = info.model_copy(update=dict(refresh_error="no segment file defines it any more"))
        out.append(info)
    return out


def members(settings: Settings, name: str) -> list[dict]:
    """The stored members of a segment (customers.id, entered_at, version)."""
    engine = _state_engine(settings)
    try:
        with engine.connect() as conn:
            row = repo.segment_by_name(conn, name)
            if row is None:
                raise WinbackError(f"segment {name!r} has not been refreshed yet; run `winback segments refresh`")
            return repo.memberships(conn, row["id"])
    finally:
        engine.dispose()


# --------------------------------------------------------------------------------- save


def save(settings: Settings, path: Path | str) -> dict:
    """Validate a spec file and copy it into the workspace's ``segments/`` folder (nothing is written
    when it is invalid: bad values, unknown or cyclic segment references)."""
    source = Path(path)
    spec = load_spec_file(source)
    cat = catalog(settings)
    specs = cat.specs
    specs[spec.name] = spec
    now = settings.clock().now()
    compile_segment(spec, now, specs)  # unknown references and cycles
    for other in cat.definitions.values():  # segments that refer to this one must still compile
        if spec.name in other.spec.references():
            compile_segment(other.spec, now, specs)
    folder = workspace_dir(settings.workspace)
    target = folder / f"{spec.name}{source.suffix.lower()}"
    for existing in spec_files(folder):
        if existing.resolve() == target.resolve():
            continue
        try:
            document = read_spec_document(existing)
        except SpecError:
            continue
        if isinstance(document, dict) and document.get("name") == spec.name:
            raise WinbackError(f"segment {spec.name!r} is already defined by {existing}; edit or remove that file")
    folder.mkdir(parents=True, exist_ok=True)
    replaced = target.exists()
    if source.resolve() != target.resolve():
        tmp = target.with_name(f".{target.name}.tmp")
        shutil.copyfile(source, tmp)
        tmp.replace(target)
    builtin = cat.get(spec.name)
    return {"name": spec.name, "title": spec.title, "path": str(target), "replaced": replaced,
            "overrides_builtin": bool(builtin and builtin.origin == "builtin")}
