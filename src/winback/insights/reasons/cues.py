"""Lexicon cue features: per reason, how many cues a text states and how many it negates.

All cues of :data:`.lexicon.CUES` are compiled into one regular expression shaped like a trie
(shared prefixes factored out), so a text is scanned once whatever the lexicon size; at each
position the longest cue wins and matches do not overlap, so "doesn't support" is one
missing-feature cue, not a support cue. Each match is then checked for a negation scope
(:data:`.lexicon.NEGATION_BEFORE` / :data:`.lexicon.NEGATION_AFTER`).
"""

from __future__ import annotations

import functools
import re
from typing import Sequence

import numpy as np
from scipy import sparse

from winback.insights.reasons.lexicon import CUES, NEGATION_AFTER, NEGATION_BEFORE, NEGATION_BEFORE_TRIGGERS
from winback.kit.patterns import trie_pattern

#: Letters that continue a word in English/Ukrainian text (a stem cue must not start after one).
_WORD_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789'абвгґдеєжзиіїйклмнопрстуфхцчшщьюяэыъё")
_NEGATION_WINDOW = 32

# How a cue must sit in the text.
_ANYWHERE, _WORD_START, _WHOLE_WORD = 0, 1, 2


def _negated(text: str, start: int, end: int) -> bool:
    """Whether the cue at ``text[start:end]`` sits in a negation scope ("not the price", "价格没问题")."""
    if NEGATION_AFTER.match(text, end, end + _NEGATION_WINDOW):
        return True
    window_start = max(0, start - _NEGATION_WINDOW)
    window = text[window_start:start]
    return any(trigger in window for trigger in NEGATION_BEFORE_TRIGGERS) and \
        NEGATION_BEFORE.search(text, window_start, start) is not None


class CueMatcher:
    """Counts plain and negated cues per reason in normalised texts."""

    def __init__(self, cues: dict[str, dict[str, Sequence[str]]], reasons: Sequence[str]):
        self.reasons = tuple(reasons)
        #: bare cue -> (reason index, placement)
        self.cue_info: dict[str, tuple[int, int]] = {}
        for reason, by_language in cues.items():
            for cue_list in by_language.values():
                for cue in cue_list:
                    bare = cue.rstrip("_")
                    if bare[0] not in _WORD_CHARS:
                        placement = _ANYWHERE
                    else:
                        placement = _WHOLE_WORD if cue.endswith("_") else _WORD_START
                    self.cue_info[bare] = (self.reasons.index(reason), placement)
        # One trie for every cue; word boundaries are checked on each match (cheaper than lookbehinds
        # in the pattern, which would defeat the regex engine's first-character scan).
        self.pattern = re.compile(trie_pattern(sorted(self.cue_info)))

    def _scan(self, text: str):
        """(cue, reason index, negated) for each cue in ``text`` that sits where it must."""
        for match in self.pattern.finditer(text):
            start, end = match.span()
            cue = match.group(0)
            reason, placement = self.cue_info[cue]
            if placement != _ANYWHERE:
                if start and text[start - 1] in _WORD_CHARS:
                    continue
                if placement == _WHOLE_WORD and end < len(text) and text[end] in _WORD_CHARS:
                    continue
            yield cue, reason, _negated(text, start, end)

    def matches(self, text: str) -> list[tuple[str, str, bool]]:
        """(cue, reason, negated) for every cue found in one normalised text (for explanations and tests)."""
        return [(cue, self.reasons[reason], negated) for cue, reason, negated in self._scan(text)]

    def features(self, texts: Sequence[str]) -> sparse.csr_matrix:
        """A (len(texts), 2 * reasons) matrix: log(1 + plain cue count) per reason, then the same for negated cues."""
        width = len(self.reasons)
        rows, cols = [], []
        for row, text in enumerate(texts):
            for _cue, reason, negated in self._scan(text):
                rows.append(row)
                cols.append(reason + width if negated else reason)
        counts = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(texts), 2 * width))
        counts.sum_duplicates()
        counts.data = np.log1p(counts.data)
        return counts


@functools.lru_cache(maxsize=4)
def cue_matcher(reasons: tuple[str, ...]) -> CueMatcher:
    """The matcher for the shipped lexicon, built once per process."""
    return CueMatcher(CUES, reasons)
