"""Text clean-up shared by training and prediction: one canonical form per comment."""

from __future__ import annotations

import re
import unicodedata

#: Comments longer than this are cut (exit comments that matter fit easily; a pasted log does not).
MAX_CHARS = 2000

_APOSTROPHES = str.maketrans({"’": "'", "ʼ": "'", "‘": "'", "`": "'", "´": "'"})
_SPACES = re.compile(r"\s+")


def normalise(text: str | None) -> str:
    """NFKC, lower case, one kind of apostrophe, single spaces, at most :data:`MAX_CHARS` characters.

    NFKC folds full-width Latin letters and digits (common in CJK text) into ASCII. Lone UTF-16
    surrogates (possible in JSON input) are replaced, so the result is always encodable.
    """
    if not text:
        return ""
    text = text[: MAX_CHARS * 2]
    if not text.isascii():
        text = text.encode("utf-8", "replace").decode("utf-8")
        text = unicodedata.normalize("NFKC", text).translate(_APOSTROPHES)
    text = _SPACES.sub(" ", text.lower()).strip()
    return text[:MAX_CHARS]
