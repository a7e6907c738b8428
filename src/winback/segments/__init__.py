"""Segments: declarative AND/OR/NOT specs over the customer profile and the facts, compiled to SQL,
with materialised, versioned memberships in the state store.

Public API::

    from winback.segments import (SegmentSpec, parse_spec, load_spec_file, SpecError,
                                  compile_segment, CompiledSegment, builtin_specs,
                                  refresh, preview, show, list_segments, save)
"""

from winback.segments.builtin import builtin_specs, load_catalog
from winback.segments.compiler import EVENT_SOURCES, CompiledSegment, CompileError, compile_segment, to_sql
from winback.segments.service import catalog, list_segments, members, preview, refresh, save, show
from winback.segments.spec import SegmentSpec, SpecError, load_spec_file, parse_spec

__all__ = [
    "EVENT_SOURCES", "CompileError", "CompiledSegment", "SegmentSpec", "SpecError", "builtin_specs", "catalog",
    "compile_segment", "list_segments", "load_catalog", "load_spec_file", "members", "parse_spec", "preview",
    "refresh", "save", "show", "to_sql",
]
