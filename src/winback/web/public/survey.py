"""The exit survey: questions, choices and input checks (pure).

Questions (``answers`` keys of ``survey_responses``):

* ``main_reason`` (required) - one of the churn reason categories price, missing_feature,
  usability, support, competitor, other (``involuntary`` is what billing says, never a choice);
* ``detail`` - free text: which feature was missing / which product they switched to;
* ``return_likelihood`` - 0 to 10;
* ``would_return_if`` - lower_price, feature_available, easier_to_use, nothing (the codes
  :data:`winback.insights.evidence.WOULD_RETURN_REASONS` understands);
* ``comment`` - free text.

Free text is stripped of control characters (line breaks and tabs are kept) and capped at
:data:`MAX_TEXT` characters.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

REASONS = ("price", "missing_feature", "usability", "support", "competitor", "other")
BRING_BACK = ("lower_price", "feature_available", "easier_to_use", "nothing")
MAX_TEXT = 2000
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069\ufeff]")

#: field -> the text key of its question (for "please check" messages)
QUESTIONS = {"main_reason": "q_reason", "detail": "q_detail", "return_likelihood": "q_return",
             "would_return_if": "q_bring_back", "comment": "q_comment"}


@dataclass(frozen=True)
class Answers:
    reason: str
    detail: str | None
    return_likelihood: int | None
    would_return_if: str | None
    comment: str | None

    def as_json(self) -> dict:
        return {"main_reason": self.reason, "detail": self.detail, "return_likelihood": self.return_likelihood,
                "would_return_if": self.would_return_if}


class BadAnswer(ValueError):
    def __init__(self, field: str):
        super().__init__(field)
        self.field = field


def clean_text(value: str | None) -> str | None:
    """Control characters removed, line breaks normalised, trimmed, at most MAX_TEXT characters."""
    if value is None:
        return None
    text = unicodedata.normalize("NFC", str(value)).replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROL.sub("", text).strip()
    return text[:MAX_TEXT].strip() or None


def _one(form: dict[str, list[str]], name: str) -> str:
    values = form.get(name) or []
    if len(values) > 1:
        raise BadAnswer(name)
    return values[0].strip() if values else ""


def parse(form: dict[str, list[str]]) -> Answers:
    """Checked answers; :class:`BadAnswer` names the first field that is missing or not a choice."""
    reason = _one(form, "main_reason")
    if reason not in REASONS:
        raise BadAnswer("main_reason")
    raw = _one(form, "return_likelihood")
    likelihood = None
    if raw:
        if not (raw.isascii() and raw.isdigit() and 0 <= int(raw) <= 10):
            raise BadAnswer("return_likelihood")
        likelihood = int(raw)
    back = _one(form, "would_return_if") or None
    if back is not None and back not in BRING_BACK:
        raise BadAnswer("would_return_if")
    detail = form.get("detail") or [""]
    comment = form.get("comment") or [""]
    return Answers(reason, clean_text(detail[0]), likelihood, back, clean_text(comment[0]))
