"""The built-in segments (YAML files shipped in ``winback/segments/builtin/``) and the catalog.

The catalog is every segment a workspace can use: the built-ins, then the workspace's own
``segments/*.yaml|*.yml|*.json`` files; a workspace file whose ``name`` equals a built-in's
overrides it. A workspace file that does not load is reported (and, when its name can still be
read, shadows the built-in of that name, so a broken override is never silently replaced).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

from winback.segments.schemas import CatalogProblem, SegmentDefinition
from winback.segments.spec import (
    NAME_PATTERN, SPEC_SUFFIXES, SegmentSpec, SpecError, parse_spec, read_spec_document,
)

BUILTIN_DIR = Path(__file__).with_name("builtin")
WORKSPACE_FOLDER = "segments"


@functools.lru_cache(maxsize=1)
def builtin_definitions() -> tuple[SegmentDefinition, ...]:
    """Every built-in segment, validated (a broken built-in is a bug: it raises)."""
    out = []
    for path in sorted(BUILTIN_DIR.glob("*.yaml")):
        document = read_spec_document(path)
        spec = parse_spec(document, file=str(path))
        if spec.name != path.stem:
            raise SpecError([], f"{path}: name {spec.name!r} differs from the file name")
        out.append(SegmentDefinition(spec=spec, origin="builtin", path=path, document=document))
    return tuple(out)


def builtin_specs() -> dict[str, SegmentSpec]:
    return {d.name: d.spec for d in builtin_definitions()}


def workspace_dir(workspace: Path) -> Path:
    return Path(workspace) / WORKSPACE_FOLDER


def spec_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in SPEC_SUFFIXES
                  and not p.name.startswith("."))


@dataclass
class Catalog:
    definitions: dict[str, SegmentDefinition] = field(default_factory=dict)
    problems: list[CatalogProblem] = field(default_factory=list)

    @property
    def specs(self) -> dict[str, SegmentSpec]:
        """name -> spec: the resolver for ``{segment: NAME}`` references."""
        return {name: d.spec for name, d in self.definitions.items()}

    def get(self, name: str) -> SegmentDefinition | None:
        return self.definitions.get(name)

    def problem_for(self, name: str) -> CatalogProblem | None:
        return next((p for p in self.problems if p.name == name), None)

    def names(self) -> list[str]:
        """Every segment name, defined or broken, sorted."""
        return sorted({*self.definitions, *(p.name for p in self.problems if p.name)})


def load_catalog(workspace: Path | None) -> Catalog:
    """The built-ins overlaid with the workspace's segment files."""
    catalog = Catalog(definitions={d.name: d for d in builtin_definitions()})
    if workspace is None:
        return catalog
    seen: dict[str, Path] = {}
    for path in spec_files(workspace_dir(workspace)):
        document = None
        try:
            document = read_spec_document(path)
            spec = parse_spec(document, file=str(path))
        except SpecError as exc:
            name = _name_of(document)
            catalog.problems.append(CatalogProblem(file=str(path), name=name, error=str(exc),
                                                   issues=exc.as_dicts()))
            if name:
                catalog.definitions.pop(name, None)
            continue
        if spec.name in seen:
            catalog.problems.append(CatalogProblem(
                file=str(path), name=None,
                error=f"segment spec {path}: name {spec.name!r} is already defined by {seen[spec.name]}"))
            continue
        seen[spec.name] = path
        catalog.definitions[spec.name] = SegmentDefinition(spec=spec, origin="workspace", path=path,
                                                           document=document)
    return catalog


def _name_of(document) -> str | None:
    if isinstance(document, dict):
        name = document.get("name")
        if isinstance(name, str) and NAME_PATTERN.match(name):
            return name
    return None
