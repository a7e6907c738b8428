"""Reading comment files (JSONL) for classification and evaluation, all-or-nothing.

Every line is checked before anything is classified; the first problem is reported with the
file name and line number (and how many more problems there are), so a caller prints nothing
partial. Blank lines are skipped. A comment line is ``{"id": <JSON scalar>, "text": <string>}``
with an optional ``"lang"``; ``id`` defaults to the line number. A labelled line (for
evaluation) also needs ``"reason"``, one of the text reasons or ``unknown``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from winback.analytics.reasons import UNKNOWN
from winback.insights.reasons.corpus import TEXT_REASONS
from winback.kit.errors import WinbackError

_MAX_PROBLEMS_KEPT = 1000
_SCALAR_TYPES = (str, int, float, bool, type(None))


class CommentFileError(WinbackError):
    """A comment file was rejected; the message names the file, the line and the problem."""

    exit_code = 2


@dataclass(frozen=True)
class CommentLine:
    """One comment to classify (``reason`` is set for labelled lines only)."""

    line: int
    id: str | int | float | bool | None
    text: str
    lang: str | None = None
    reason: str | None = None


def read_comment_lines(data: bytes, source: str, labelled: bool = False) -> list[CommentLine]:
    """Parse and check every line of a JSONL comment file; raise :class:`CommentFileError` on any problem."""
    problems: list[str] = []
    total_problems = 0
    comments: list[CommentLine] = []
    for number, raw in enumerate(data.split(b"\n"), start=1):
        if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        if not raw.strip():
            continue
        try:
            comments.append(_parse_line(raw, number, labelled))
        except ValueError as exc:
            total_problems += 1
            if len(problems) < _MAX_PROBLEMS_KEPT:
                problems.append(f"{source}, line {number}: {exc}")
    if total_problems:
        more = total_problems - 1
        suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
        raise CommentFileError(problems[0] + suffix)
    if not comments:
        raise CommentFileError(f"{source}: empty file, no comment lines to read")
    return comments


def _parse_line(raw: bytes, number: int, labelled: bool) -> CommentLine:
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at column {exc.start + 1})") from None
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"invalid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(row, dict):
        raise ValueError(f"expected a JSON object, got {_json_type(row)}")
    if "text" not in row:
        raise ValueError('missing "text"')
    text = row["text"]
    if not isinstance(text, str):
        raise ValueError(f'"text" must be a string, got {_json_type(text)} (use "" for no comment)')
    comment_id = row.get("id", number)
    if not isinstance(comment_id, _SCALAR_TYPES):
        raise ValueError(f'"id" must be a string, number, boolean or null, got {_json_type(comment_id)}')
    if isinstance(comment_id, str) and not _encodable(comment_id):
        raise ValueError('"id" contains an invalid Unicode escape (a lone surrogate)')
    lang = row.get("lang")
    if lang is not None and not (isinstance(lang, str) and 0 < len(lang) <= 35 and _encodable(lang)):
        raise ValueError(f'"lang" must be a language tag such as "en" or "zh-Hant", got {_json_type(lang)}')
    reason = None
    if labelled:
        reason = row.get("reason")
        if reason not in TEXT_REASONS and reason != UNKNOWN:
            allowed = ", ".join((*TEXT_REASONS, UNKNOWN))
            shown = "missing" if "reason" not in row else f"{_clip(reason)!r}"
            raise ValueError(f'"reason" {shown}: expected one of {allowed}')
    return CommentLine(number, comment_id, text, lang, reason)


def _json_type(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _encodable(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _clip(value, limit: int = 40) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
