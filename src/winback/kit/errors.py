"""Error types. Every user-facing failure is a :class:`WinbackError` with a one-line reason."""

from __future__ import annotations

from dataclasses import asdict, dataclass


class WinbackError(Exception):
    """A failure the user can act on; ``str(err)`` is a single line."""

    exit_code = 1

    def __str__(self) -> str:  # keep it to one line whatever the message holds
        return " ".join(str(self.args[0] if self.args else self.__class__.__name__).split())


class ConfigError(WinbackError):
    """The workspace or settings are missing or invalid."""


@dataclass(frozen=True)
class RowError:
    """One problem in one cell (or one row) of an input file."""

    file: str
    row: int | None  # 1-based record number as a spreadsheet shows it (header = row 1), JSONL line
    column: str | None
    value: str | None
    reason: str

    def as_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        where = self.file
        if self.row is not None:
            where += f", row {self.row}"
        if self.column:
            where += f", column {self.column!r}"
        value = "" if self.value is None else f" (value {_clip(self.value)!r})"
        return f"{where}: {self.reason}{value}"


def _clip(value: str, limit: int = 60) -> str:
    return value if len(value) <= limit else value[: limit - 1] + "…"


class ValidationFailed(WinbackError):
    """Input was rejected; ``errors`` lists every bad cell found (up to a cap)."""

    def __init__(self, errors: list[RowError], total: int | None = None):
        self.errors = errors
        self.total = total if total is not None else len(errors)
        first = str(errors[0]) if errors else "invalid input"
        more = f" (and {self.total - 1} more problem{'s' if self.total > 2 else ''})" if self.total > 1 else ""
        super().__init__(f"import rejected, nothing written: {first}{more}")
