"""Regular expressions built from word lists."""

from __future__ import annotations

import re
from typing import Callable, Iterable


def trie_pattern(words: Iterable[str], char_pattern: Callable[[str], str] = re.escape) -> str:
    """One regular expression matching any of ``words``, with common prefixes factored out (a trie),
    so a text is scanned once whatever the list's size; where a word ends inside a longer one the
    longer is tried first (greedy). ``char_pattern`` turns one character into its pattern (default:
    the character itself, escaped; callers may map a sentinel to a boundary)."""
    trie: dict = {}
    for word in words:
        node = trie
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}

    def pattern(node: dict) -> str:
        branches = [char_pattern(char) + pattern(child) for char, child in sorted(node.items()) if char]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        if "" in node:
            return (body if len(branches) > 1 else "(?:" + body + ")") + "?"
        return body

    return pattern(trie)
