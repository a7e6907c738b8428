"""The segments stage's input/output shapes."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from winback.segments.spec import SegmentSpec

Origin = Literal["builtin", "workspace"]


class SegmentDefinition(BaseModel):
    """A segment as the catalog knows it: the validated spec, where it came from, the document as written."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    spec: SegmentSpec
    origin: Origin
    path: Path | None = None
    document: Any = None  # the parsed YAML/JSON, stored as the segment's spec text

    @property
    def name(self) -> str:
        return self.spec.name


class CatalogProblem(BaseModel):
    """A workspace segment file that could not be loaded."""

    file: str
    name: str | None  # when the file's name could still be read
    error: str
    issues: list[dict] = []


class RefreshOutcome(BaseModel):
    name: str
    ok: bool
    version: int | None = None
    member_count: int | None = None  # members after the refresh (the previous ones when it failed)
    entered: int = 0
    exited: int = 0
    unmatched: int = 0  # selected profile rows whose customer is not in the state store
    as_of: dt.datetime
    seconds: float = 0.0
    query_seconds: float = 0.0  # of which evaluating the segment on the history
    error: str | None = None


class PreviewResult(BaseModel):
    name: str
    as_of: dt.datetime
    count: int
    sample: list[dict]
    sql: str
    params: list[Any]


class SegmentInfo(BaseModel):
    """One line of ``winback segments list``."""

    name: str
    title: str
    origin: str
    version: int | None = None
    member_count: int | None = None
    refreshed_at: dt.datetime | None = None
    as_of: dt.datetime | None = None
    refresh_error: str | None = None
    defined: bool = True  # False: the state store knows it but no spec file defines it any more
