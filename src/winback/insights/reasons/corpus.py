"""Labelled churn comments: the shipped training corpus and the generator's texts (a test set).

The training corpus (``data/train.jsonl``, one ``{"text", "reason", "lang"}`` per line) is
hand-written exit-survey and cancellation comments, about fifty per reason and language, written
in parallel: the k-th sentence of a reason says roughly the same thing in every language.
:func:`parallel_groups` uses that to keep translations of one sentence in the same
cross-validation fold.

The synthetic-data generator's sentences (:mod:`winback.synth.texts`) are deliberately *not* in
the corpus; :func:`generator_rows` expands them (with the generator's own :class:`TextPool`) so
they can serve as a second, independently written test set.
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Iterable, Mapping

from winback.analytics.reasons import COMPETITOR, MISSING_FEATURE, OTHER, PRICE, SUPPORT, USABILITY

#: The reasons a comment's text can state (``involuntary`` comes from billing facts, never from text).
TEXT_REASONS: tuple[str, ...] = (PRICE, MISSING_FEATURE, USABILITY, SUPPORT, COMPETITOR, OTHER)

TRAIN_CORPUS_NAME = "train.jsonl"


def parse_labelled_lines(lines: Iterable[str], source: str) -> list[dict]:
    """Rows ``{"text", "reason", "lang"?, "id"?}`` from JSONL lines; a bad line raises ValueError naming it."""
    rows = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{source}, line {number}: invalid JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise ValueError(f"{source}, line {number}: expected a JSON object")
        for field in ("text", "reason"):
            if not isinstance(row.get(field), str):
                raise ValueError(f"{source}, line {number}: {field!r} must be a string")
        rows.append(row)
    return rows


@functools.lru_cache(maxsize=1)
def training_rows() -> tuple[dict, ...]:
    """The shipped training corpus, read once per process."""
    text = resources.files("winback.insights.reasons").joinpath("data").joinpath(TRAIN_CORPUS_NAME).read_text("utf-8")
    rows = parse_labelled_lines(text.splitlines(), TRAIN_CORPUS_NAME)
    unknown = {row["reason"] for row in rows} - set(TEXT_REASONS)
    if unknown:
        raise ValueError(f"{TRAIN_CORPUS_NAME}: unknown reasons {sorted(unknown)}")
    return tuple(rows)


def parallel_groups(rows: Iterable[Mapping]) -> list[str]:
    """A group label per row: reason and rank within its (language, reason) block.

    Rows that are translations of one another share a label, so grouped cross-validation does not
    score a sentence against its own translation (zh-Hans and zh-Hant share most characters).
    """
    seen: dict[tuple[str, str], int] = {}
    groups = []
    for row in rows:
        key = (row.get("lang") or "", row["reason"])
        rank = seen.get(key, 0)
        seen[key] = rank + 1
        groups.append(f"{row['reason']}:{rank}")
    return groups


def generator_rows(kind: str = "saas") -> list[dict]:
    """The generator's reason texts, expanded, one row per distinct sentence: ``{"text", "reason", "lang"}``.

    ``kind`` is ``saas`` (SAAS_REASON_TEXTS with SaaS competitors) or ``shop`` (SHOP_REASON_TEXTS).
    ``{feature}`` is expanded over every feature label and ``{competitor}`` over every competitor.
    """
    from winback.synth import texts as synth_texts

    if kind == "saas":
        groups, competitors = synth_texts.SAAS_REASON_TEXTS, synth_texts.SAAS_COMPETITORS
    elif kind == "shop":
        groups, competitors = synth_texts.SHOP_REASON_TEXTS, synth_texts.SHOP_COMPETITORS
    else:
        raise ValueError(f"kind {kind!r}: expected saas or shop")
    pool = synth_texts.TextPool(groups, competitors)
    strings = pool.strings.to_pylist()
    rows, seen = [], set()
    for g, reason in enumerate(pool.groups):
        for lang_index, lang in enumerate(synth_texts.LANGUAGES):
            for f in range(len(synth_texts.FEATURES)):
                start, count = int(pool.start[g, lang_index, f]), int(pool.count[g, lang_index, f])
                for text in strings[start:start + count]:
                    if (text, reason) not in seen:
                        seen.add((text, reason))
                        rows.append({"text": text, "reason": reason, "lang": lang})
    return rows
