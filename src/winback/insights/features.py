"""Feature requests and the releases that answer them (DOMAIN.md step 5: "put them on the roadmap
... then tell the affected churned segments what changed").

A :class:`FeatureCatalog` lists the features and integrations customers ask for: the keys found in
the history (``releases.feature`` and ``product_events.feature`` of ``feature_requested`` events),
each with aliases to recognise it in free text in six language variants (en, ja, ko, uk, zh-Hans,
zh-Hant). Aliases come from three places:

* a shipped alias list (``themes_data/features.yaml``: SSO / single sign-on / シングルサインオン /
  单点登录 / 單一登入 / 싱글 사인온 / єдиний вхід, mobile app, webhooks, custom reports, Salesforce,
  Slack, Zapier, dark mode, offline mode ...), used for a history key that equals a shipped key or
  whose release title / spaced key names exactly one shipped feature ("Single sign-on (SAML)");
* the key with underscores replaced by spaces ("integration_x" -> "integration x");
* every release title of the feature, taken literally ("Integration X"), with and without a
  trailing parenthesis.

Matching (:class:`PhraseMatcher`) works on normalised text (:func:`normalize_text`: NFKC,
HTML tags and control characters removed, case-folded, whitespace collapsed): Latin and Cyrillic
phrases must start a word and match as stems ("budget cut" matches "budget cuts"); a phrase of at
most four characters, or whose last word has one or two letters, must also end a word ("sso",
"2fa", "integration x"); CJK and Hangul phrases match anywhere. All phrases are
compiled into one trie-shaped regular expression, so a text costs one scan whatever the size of
the lexicon.

:func:`feature_requests` combines ``feature_requested`` events (origin ``event``) with features
mentioned in survey answers and cancellation comments (origin ``text``); :func:`link_releases`
attaches the release that answers each request; :func:`customers_waiting_for` and
:func:`feature_summary` say who asked, who of them churned, the MRR they took with them, and
whether the feature has shipped.

A customer is **churned** at ``as_of`` (:func:`churned_customers`) when they had a paying spell
(:func:`winback.analytics.metrics.paid_spells`) that ended at or before ``as_of`` and none active
then; their **lost MRR** is the MRR of the spell(s) that ended last.
"""

from __future__ import annotations

import bisect
import datetime as dt
import functools
import html
import json
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import pyarrow as pa
import pyarrow.compute as pc
import yaml

from winback.insights.reasons.language import detect_language as script_language
from winback.kit.patterns import trie_pattern

DATA_DIR = Path(__file__).with_name("themes_data")
LANGUAGES: tuple[str, ...] = ("en", "ja", "ko", "uk", "zh-Hans", "zh-Hant")
KEY = ("source", "customer_id")
UTC = dt.timezone.utc

#: Normalised texts are cut to this many characters (a 100k-character paste costs no more).
MAX_CHARS = 4000

# ================================================================================ normalisation

_TAG = re.compile(r"<[^<>]{0,400}>")
_INVISIBLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u00ad\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufe00-\ufe0f\ufeff]")
_APOSTROPHES = re.compile(r"[\u2018\u2019\u02bc\u02b9\u0060\u00b4\u2032]")
_SPACES = re.compile(r"\s+")
#: characters that make up a "word" for Latin/Cyrillic boundaries (after case folding)
WORD_CHARS = "0-9a-z\u00b5\u00df-\u024f\u0370-\u03ff\u0400-\u052f"
_WORD_CHAR = re.compile(f"[{WORD_CHARS}]")
_USABLE = re.compile(r"[^\W_]")


def clean_text(text: Any, max_chars: int = MAX_CHARS) -> str:
    """Display-safe text: NFKC, HTML tags and entities resolved, invisible/control characters
    removed, whitespace collapsed, at most ``max_chars`` characters (case kept)."""
    if text is None:
        return ""
    if not isinstance(text, str):
        text = str(text)
    text = text[: max_chars * 2]
    if "<" in text:
        text = _TAG.sub(" ", text)
    if "&" in text:
        text = html.unescape(text)
    text = unicodedata.normalize("NFKC", text)
    text = _INVISIBLE.sub(" ", text)
    text = _APOSTROPHES.sub("'", text)
    text = _SPACES.sub(" ", text).strip()
    return text[:max_chars]


def normalize_text(text: Any, max_chars: int = MAX_CHARS) -> str:
    """The form every cue, alias and text is matched in: :func:`clean_text`, then case-folded."""
    return clean_text(text, max_chars).casefold()


def is_usable(normalized: str) -> bool:
    """Whether a normalised text has any letter or digit (emoji-only and punctuation-only are not)."""
    return bool(normalized) and _USABLE.search(normalized) is not None


# ================================================================================ language

_UK_ONLY = re.compile(r"[іїєґІЇЄҐ]")
_RU_ONLY = re.compile(r"[ыэъёЫЭЪЁ]")


def detect_language(text: Any) -> str:
    """Language of a text from its script (:func:`winback.insights.reasons.language.detect_language`:
    ``ja``, ``ko``, ``zh-Hans`` / ``zh-Hant``, ``uk``, ``en``), with ``ru`` for Cyrillic text that
    has Russian-only letters and no Ukrainian-only ones, and ``und`` when there are no letters.
    Only the first 1,000 characters are looked at."""
    if not text:
        return "und"
    sample = str(text)[:1000]
    found = script_language(sample)
    if found is None:
        return "und"
    if found == "uk" and _RU_ONLY.search(sample) and not _UK_ONLY.search(sample):
        return "ru"
    return found


_LANG_ALIASES = {
    "zh-cn": "zh-Hans", "zh-sg": "zh-Hans", "zh-hans": "zh-Hans", "zh-hans-cn": "zh-Hans", "zh": "zh-Hans",
    "zh-tw": "zh-Hant", "zh-hk": "zh-Hant", "zh-mo": "zh-Hant", "zh-hant": "zh-Hant", "zh-hant-tw": "zh-Hant",
}
_SCRIPT_OF = {"ja": "jpan", "ko": "kore", "zh-Hans": "hani", "zh-Hant": "hani", "uk": "cyrl", "ru": "cyrl",
              "be": "cyrl", "bg": "cyrl", "sr": "cyrl"}


def canonical_language(code: Any) -> str | None:
    """``ja-JP`` -> ``ja``, ``zh_TW`` -> ``zh-Hant``, ``zh-CN`` -> ``zh-Hans``; None for empty input."""
    if code is None:
        return None
    text = str(code).strip().replace("_", "-")
    if not text:
        return None
    low = text.lower()
    if low in _LANG_ALIASES:
        return _LANG_ALIASES[low]
    if low.startswith("zh-"):
        return "zh-Hant" if any(p in low for p in ("hant", "tw", "hk", "mo")) else "zh-Hans"
    return low.split("-")[0]


def resolve_language(provided: Any, text: str, detected: str | None = None) -> str:
    """The given language when it fits the text's script (so ``ja`` stays ``ja`` for a kanji-only
    sentence and ``fr`` stays ``fr``), else the detected one (``detected`` saves detecting again)."""
    detected = detected or detect_language(text)
    given = canonical_language(provided)
    if given is None:
        return detected
    if detected == "und":
        return given
    script_given = _SCRIPT_OF.get(given, "latn")
    script_detected = _SCRIPT_OF.get(detected, "latn")
    if script_given == script_detected or (script_given == "jpan" and script_detected == "hani"):
        return given
    return detected


# ================================================================================ phrase matching

_END = f"(?![{WORD_CHARS}])"
_START = f"(?<![{WORD_CHARS}])"
_SENTINEL = "\x00"


def _needs_end_boundary(phrase: str) -> bool:
    """Short phrases ("sso", "2fa") and phrases ending in a one- or two-letter word
    ("integration x", "switch to") must end a word; longer ones match as stems."""
    last = phrase.rsplit(" ", 1)[-1]
    return (len(phrase) <= 4 or len(last) <= 2) and bool(_WORD_CHAR.match(phrase[-1]))


def _first_chars(words: Iterable[str]) -> str:
    return "[" + "".join(re.escape(c) for c in sorted({w[0] for w in words})) + "]"


def _trie_pattern(words: Iterable[str]) -> str:
    """A trie-shaped pattern of ``words`` in which the sentinel character stands for a word end."""
    return trie_pattern(words, lambda ch: _END if ch == _SENTINEL else re.escape(ch))


class PhraseMatcher:
    """Find which of many phrases occur in normalised texts, with one regular-expression scan.

    ``phrases`` maps a phrase (any form: it is normalised here) to labels (e.g. theme ids). At each
    position of a text only the longest phrase starting there counts, so "price increase" shadows
    "price" but a phrase starting later inside it is still found. Word-boundary rules are in the
    module docstring.
    """

    def __init__(self, phrases: Mapping[str, Iterable[str]]):
        self.labels: dict[str, tuple[str, ...]] = {}
        for phrase, labels in phrases.items():
            norm = normalize_text(phrase)
            if not norm:
                continue
            merged = dict.fromkeys(self.labels.get(norm, ()))
            merged.update(dict.fromkeys(labels))
            self.labels[norm] = tuple(merged)
        bounded, free = [], []
        for phrase in self.labels:
            word = phrase + (_SENTINEL if _needs_end_boundary(phrase) else "")
            (bounded if _WORD_CHAR.match(phrase[0]) else free).append(word)
        parts = []
        # a character-class guard in front of each trie: Python's regex engine would otherwise try
        # every first-level branch at every position (5x slower)
        if bounded:
            parts.append(_START + "(?=" + _first_chars(bounded) + ")(?:" + _trie_pattern(bounded) + ")")
        if free:
            parts.append("(?=" + _first_chars(free) + ")(?:" + _trie_pattern(free) + ")")
        self._regex = re.compile("(?=(" + "|".join(parts) + "))") if parts else None

    def __len__(self) -> int:
        return len(self.labels)

    def phrases_in(self, normalized: str) -> list[str]:
        """Distinct phrases found in one normalised text, in order of first occurrence."""
        if self._regex is None or not normalized:
            return []
        return list(dict.fromkeys(m.group(1) for m in self._regex.finditer(normalized)))

    def labels_in(self, normalized: str) -> list[str]:
        """Distinct labels of the phrases found, in order of first occurrence."""
        out: dict[str, None] = {}
        for phrase in self.phrases_in(normalized):
            out.update(dict.fromkeys(self.labels[phrase]))
        return list(out)


# ================================================================================ catalog

@dataclass(frozen=True)
class Release:
    release_id: str
    feature: str | None
    title: str
    released_at: dt.datetime  # aware UTC
    kind: str | None = None
    shipped: bool = False  # released_at <= the catalog's as_of

    def to_dict(self) -> dict:
        return {"release_id": self.release_id, "feature": self.feature, "title": self.title,
                "released_at": self.released_at.isoformat(), "kind": self.kind, "shipped": self.shipped}


@dataclass(frozen=True)
class Feature:
    """One feature or integration customers ask for."""

    key: str
    label: str
    aliases: tuple[str, ...]
    known_as: str | None = None  # the shipped alias-list key it was matched to, if any
    releases: tuple[Release, ...] = ()

    @property
    def release(self) -> Release | None:
        """The release that delivered it (the earliest shipped one), else the next planned one."""
        shipped = [r for r in self.releases if r.shipped]
        if shipped:
            return shipped[0]
        return self.releases[0] if self.releases else None

    @property
    def shipped(self) -> bool:
        return any(r.shipped for r in self.releases)


@functools.lru_cache(maxsize=4)
def _shipped_aliases(path: str | None = None) -> dict[str, dict]:
    with open(path or DATA_DIR / "features.yaml", encoding="utf-8") as fh:
        data = yaml.safe_load(fh) or {}
    out = {}
    for key, spec in (data.get("features") or {}).items():
        aliases = []
        for lang_aliases in (spec.get("aliases") or {}).values():
            aliases.extend(str(a) for a in lang_aliases or ())
        out[str(key)] = {"label": str(spec.get("label") or key), "aliases": tuple(aliases)}
    return out


def shipped_feature_aliases() -> dict[str, dict]:
    """The shipped alias list: ``{key: {"label": str, "aliases": (phrase, ...)}}``."""
    return dict(_shipped_aliases())


def _strip_parenthesis(title: str) -> str:
    return re.sub(r"\s*[(\[].*?[)\]]\s*$", "", title).strip()


def _literal_aliases(key: str, titles: Iterable[str]) -> list[str]:
    out = [key, key.replace("_", " ").replace("-", " ")]
    for title in titles:
        if title:
            out.append(title)
            stripped = _strip_parenthesis(title)
            if stripped and stripped != title:
                out.append(stripped)
    return [a for a in out if normalize_text(a)]


class FeatureCatalog:
    """Features by key, with aliases and releases; :meth:`extract` finds them in texts."""

    def __init__(self, features: Iterable[Feature], as_of: dt.datetime | None = None):
        self.features: dict[str, Feature] = {}
        for feature in features:
            self.features[feature.key] = feature
        self.as_of = as_of
        phrases: dict[str, list[str]] = {}
        for feature in self.features.values():
            for alias in feature.aliases:
                phrases.setdefault(alias, []).append(feature.key)
        self.matcher = PhraseMatcher(phrases)

    # ---------------------------------------------------------------- construction
    @classmethod
    def builtin(cls) -> "FeatureCatalog":
        """Every feature of the shipped alias list (no releases)."""
        return cls(Feature(key, spec["label"], tuple(dict.fromkeys(spec["aliases"] + tuple(_literal_aliases(key, ())))),
                           known_as=key)
                   for key, spec in _shipped_aliases().items())

    @classmethod
    def from_keys(cls, keys: Iterable[str], releases: pa.Table | Sequence[Mapping] | None = None,
                  as_of: dt.datetime | None = None) -> "FeatureCatalog":
        """A catalog of ``keys`` plus every feature key of ``releases`` (rows with ``release_id,
        released_at, title, feature`` and optionally ``kind``); ``as_of`` decides ``shipped``."""
        as_of_utc = _aware(as_of) if as_of is not None else None
        rel_rows = _rows(releases) if releases is not None else []
        by_key: dict[str, list[Release]] = {}
        for row in rel_rows:
            key = row.get("feature")
            if not key:
                continue
            at = _aware(row["released_at"])
            by_key.setdefault(str(key), []).append(Release(
                release_id=str(row["release_id"]), feature=str(key), title=str(row.get("title") or key),
                released_at=at, kind=row.get("kind"), shipped=as_of_utc is not None and at <= as_of_utc))
        all_keys = list(dict.fromkeys([str(k) for k in keys if k] + list(by_key)))
        shipped = _shipped_aliases()
        shipped_matcher = PhraseMatcher({a: [k] for k, spec in shipped.items() for a in spec["aliases"]})
        features = []
        for key in all_keys:
            rels = tuple(sorted(by_key.get(key, ()), key=lambda r: (r.released_at, r.release_id)))
            titles = [r.title for r in rels]
            known = key if key in shipped else None
            if known is None:
                hits = set()
                for candidate in [key.replace("_", " ")] + titles:
                    hits.update(shipped_matcher.labels_in(normalize_text(candidate)))
                if len(hits) == 1:
                    known = hits.pop()
            aliases = list(_literal_aliases(key, titles))
            if known is not None:
                aliases.extend(shipped[known]["aliases"])
            label = shipped[known]["label"] if known is not None and known == key else (
                titles[0] if titles else key.replace("_", " ").capitalize())
            features.append(Feature(key, label, tuple(dict.fromkeys(aliases)), known_as=known, releases=rels))
        return cls(features, as_of=as_of_utc)

    @classmethod
    def from_history(cls, con, as_of: dt.datetime) -> "FeatureCatalog":
        """Keys from ``releases.feature`` (all releases, planned ones too) and from
        ``feature_requested`` events up to ``as_of``; ``shipped`` means released by ``as_of``."""
        ev = con.table("product_events")
        ev = ev.filter((ev.event_type == "feature_requested") & ev.feature.notnull()
                       & (ev.occurred_at <= _instant(as_of)))
        keys = ev.select("feature").distinct().to_pyarrow().column("feature").to_pylist()
        rel = con.table("releases")
        releases = rel.filter(rel.feature.notnull()).select("release_id", "released_at", "title", "feature",
                                                            "kind").to_pyarrow()
        return cls.from_keys(sorted(keys), releases, as_of=as_of)

    # ---------------------------------------------------------------- access
    def __contains__(self, key: object) -> bool:
        return key in self.features

    def __getitem__(self, key: str) -> Feature:
        return self.features[key]

    def __iter__(self) -> Iterator[Feature]:
        return iter(self.features.values())

    def __len__(self) -> int:
        return len(self.features)

    @property
    def keys(self) -> list[str]:
        return list(self.features)

    def find(self, key: str) -> Feature | None:
        """The feature with this key, or the one matched to this shipped alias-list key."""
        if key in self.features:
            return self.features[key]
        for feature in self.features.values():
            if feature.known_as == key:
                return feature
        return None

    def extract(self, texts: Iterable[Any]) -> list[list[str]]:
        """Feature keys each text mentions (in order of first mention, no repeats)."""
        return [self.matcher.labels_in(normalize_text(t)) for t in texts]

    def extract_normalized(self, normalized: str) -> list[str]:
        return self.matcher.labels_in(normalized)


def extract_feature_requests(texts: Iterable[Any], catalog: FeatureCatalog | None = None) -> list[list[str]]:
    """Which catalog features each text mentions (the built-in alias list when no catalog is given)."""
    return (catalog or FeatureCatalog.builtin()).extract(texts)


# ================================================================================ history helpers

def _aware(value: Any) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, dt.date):
        return dt.datetime.combine(value, dt.time(), UTC)
    if isinstance(value, str):
        from winback.kit.clock import parse_instant
        return parse_instant(value)
    raise TypeError(f"not a timestamp: {value!r}")


def _instant(value: dt.datetime):
    """A timestamp literal comparable with the history's zone-less UTC timestamps."""
    import ibis

    value = _aware(value).replace(tzinfo=None)
    return ibis.literal(value, type="timestamp")


def _rows(table: Any) -> list[dict]:
    if table is None:
        return []
    if isinstance(table, pa.Table):
        return table.to_pylist()
    if hasattr(table, "to_pyarrow"):
        return table.to_pyarrow().to_pylist()
    return [dict(r) for r in table]


def _as_arrow(table: Any) -> pa.Table:
    if isinstance(table, pa.Table):
        return table
    if hasattr(table, "to_pyarrow"):
        return table.to_pyarrow()
    return pa.Table.from_pylist([dict(r) for r in table])


def _utc_ts(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    """A timestamp column as ``timestamp[us, tz=UTC]`` (zone-less input is UTC already)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks else pa.array([], type=column.type)
    if not pa.types.is_timestamp(column.type):
        column = column.cast(pa.timestamp("us"))
    if column.type.tz is None:
        column = column.cast(pa.timestamp("us")).cast(pa.int64()).cast(pa.timestamp("us", tz="UTC"))
    return column.cast(pa.timestamp("us", tz="UTC"))


def churned_customers(con, as_of: dt.datetime) -> pa.Table:
    """Customers churned at ``as_of``: ``source, customer_id, churned_at, lost_mrr_minor, currency``.

    Churned = a paying spell ended at or before ``as_of`` and none is active then (see
    :func:`winback.analytics.metrics.paid_spells`); lost MRR = the MRR of the spell(s) that ended
    last (several spells ending at the same instant add up, per currency of the first of them).
    """
    import ibis
    from winback.analytics.metrics import paid_spells

    t = _instant(as_of)
    sp = paid_spells(con)
    sp = sp.filter(sp.paid_start <= t).select("source", "customer_id", "paid_end", "mrr", "currency")
    ended = sp.paid_end.notnull() & (sp.paid_end <= t)
    flags = sp.mutate(_active=ibis.ifelse(ended, 0, 1), _end=ibis.ifelse(ended, sp.paid_end, ibis.null("timestamp")))
    per = flags.group_by(list(KEY)).aggregate(_n_active=flags._active.sum(), churned_at=flags._end.max())
    per = per.filter((per._n_active == 0) & per.churned_at.notnull()).select("source", "customer_id", "churned_at")
    last = flags.join(per, list(KEY))
    last = last.filter(last._end == last.churned_at)
    out = last.group_by(["source", "customer_id", "churned_at"]).aggregate(
        lost_mrr_minor=last.mrr.sum(), currency=last.currency.min())
    table = out.order_by(["source", "customer_id"]).to_pyarrow()
    return pa.table({
        "source": table.column("source").cast(pa.string()),
        "customer_id": table.column("customer_id").cast(pa.string()),
        "churned_at": _utc_ts(table.column("churned_at")),
        "lost_mrr_minor": table.column("lost_mrr_minor").cast(pa.int64()),
        "currency": table.column("currency").cast(pa.string()),
    })


# ================================================================================ requests

REQUEST_SCHEMA = pa.schema([
    ("source", pa.string()), ("customer_id", pa.string()), ("feature", pa.string()),
    ("requested_at", pa.timestamp("us", tz="UTC")), ("origin", pa.string()), ("channel", pa.string()),
    ("text", pa.string()),
])


def feature_requests(con, as_of: dt.datetime, *, catalog: FeatureCatalog | None = None,
                     include_tickets: bool = False) -> pa.Table:
    """Every feature request known at ``as_of``, one row per (customer, feature, moment, channel).

    Columns: ``source, customer_id, feature, requested_at`` (UTC), ``origin`` (``event`` for
    ``feature_requested`` product events, ``text`` for a feature named in free text), ``channel``
    (``event``, ``survey`` = survey_responses.text, ``cancel_comment`` =
    subscriptions.cancel_reason_text at ``coalesce(canceled_at, ended_at)``, ``ticket`` =
    tickets.subject when ``include_tickets``) and ``text`` (the text, null for events).

    Ticket subjects are left out by default: "is there an integration with X?" is a question,
    not a request, as often as not. ``catalog`` defaults to :meth:`FeatureCatalog.from_history`.
    """
    catalog = catalog or FeatureCatalog.from_history(con, as_of)
    t = _instant(as_of)
    parts: list[pa.Table] = []

    ev = con.table("product_events")
    ev = ev.filter((ev.event_type == "feature_requested") & ev.feature.notnull() & (ev.occurred_at <= t))
    events = ev.select("source", "customer_id", "feature", requested_at=ev.occurred_at).to_pyarrow()
    n = events.num_rows
    parts.append(pa.table({
        "source": events.column("source").cast(pa.string()),
        "customer_id": events.column("customer_id").cast(pa.string()),
        "feature": events.column("feature").cast(pa.string()),
        "requested_at": _utc_ts(events.column("requested_at")),
        "origin": pa.array(["event"] * n, pa.string()),
        "channel": pa.array(["event"] * n, pa.string()),
        "text": pa.nulls(n, pa.string()),
    }, schema=REQUEST_SCHEMA))

    texts = []
    sr = con.table("survey_responses")
    sr = sr.filter(sr.text.notnull() & (sr.responded_at <= t))
    texts.append(("survey", sr.select("source", "customer_id", "text", at=sr.responded_at)))
    subs = con.table("subscriptions")
    at = subs.canceled_at.coalesce(subs.ended_at)
    subs = subs.filter(subs.cancel_reason_text.notnull() & at.notnull() & (at <= t))
    texts.append(("cancel_comment", subs.select("source", "customer_id", text=subs.cancel_reason_text, at=at)))
    if include_tickets:
        tk = con.table("tickets")
        tk = tk.filter(tk.subject.notnull() & (tk.opened_at <= t))
        texts.append(("ticket", tk.select("source", "customer_id", text=tk.subject, at=tk.opened_at)))
    for channel, expr in texts:
        table = expr.to_pyarrow()
        found = catalog.extract(table.column("text").to_pylist())
        idx = [i for i, keys in enumerate(found) for _ in keys]
        keys = [k for ks in found for k in ks]
        sel = pa.array(idx, pa.int64())
        parts.append(pa.table({
            "source": table.column("source").take(sel).cast(pa.string()),
            "customer_id": table.column("customer_id").take(sel).cast(pa.string()),
            "feature": pa.array(keys, pa.string()),
            "requested_at": _utc_ts(table.column("at").take(sel)),
            "origin": pa.array(["text"] * len(keys), pa.string()),
            "channel": pa.array([channel] * len(keys), pa.string()),
            "text": table.column("text").take(sel).cast(pa.string()),
        }, schema=REQUEST_SCHEMA))
    out = pa.concat_tables(parts)
    out = _distinct(out)
    order = pc.sort_indices(out, [("source", "ascending"), ("customer_id", "ascending"),
                                  ("requested_at", "ascending"), ("feature", "ascending"),
                                  ("channel", "ascending")])
    return out.take(order)


def _distinct(table: pa.Table) -> pa.Table:
    seen: set = set()
    keep = []
    cols = [table.column(c).to_pylist() for c in ("source", "customer_id", "feature", "requested_at", "channel")]
    for i, key in enumerate(zip(*cols)):
        if key not in seen:
            seen.add(key)
            keep.append(i)
    return table.take(pa.array(keep, pa.int64())) if len(keep) < table.num_rows else table


LINK_COLUMNS = (("release_id", pa.string()), ("release_title", pa.string()),
                ("released_at", pa.timestamp("us", tz="UTC")), ("shipped", pa.bool_()),
                ("released_after_request", pa.bool_()))


def link_releases(requests: pa.Table, releases: Any, *, as_of: dt.datetime | None = None) -> pa.Table:
    """``requests`` plus the release that answers each one.

    The answering release of a request is the first release of its feature at or after
    ``requested_at``; when the feature had already been released before the request, the latest
    such release (``released_after_request`` is then false: the customer asked for something
    that existed - an awareness problem, not a roadmap one). Added columns: ``release_id,
    release_title, released_at, shipped`` (``released_at <= as_of``; false without a release)
    and ``released_after_request`` (null without a release). ``releases`` is an Arrow or Ibis
    table (or rows) with ``release_id, released_at, title, feature``; ``as_of`` defaults to now.
    """
    if as_of is None:
        from winback.kit.clock import SystemClock
        as_of = SystemClock().now()
    as_of = _aware(as_of)
    by_feature: dict[str, list[tuple[dt.datetime, str, str]]] = {}
    for row in _rows(releases):
        if row.get("feature"):
            by_feature.setdefault(str(row["feature"]), []).append(
                (_aware(row["released_at"]), str(row["release_id"]), str(row.get("title") or "")))
    for rels in by_feature.values():
        rels.sort()
    times = {k: [r[0] for r in v] for k, v in by_feature.items()}
    features = requests.column("feature").to_pylist()
    asked = requests.column("requested_at").to_pylist()
    out: dict[str, list] = {name: [] for name, _ in LINK_COLUMNS}
    for feature, at in zip(features, asked):
        rels = by_feature.get(feature)
        if not rels or at is None:
            rel, after = (None, None) if not rels else (rels[-1], None)
        else:
            at = _aware(at)
            i = bisect.bisect_left(times[feature], at)
            rel, after = (rels[i], True) if i < len(rels) else (rels[-1], False)
        out["release_id"].append(rel[1] if rel else None)
        out["release_title"].append(rel[2] if rel else None)
        out["released_at"].append(rel[0] if rel else None)
        out["shipped"].append(bool(rel and rel[0] <= as_of))
        out["released_after_request"].append(after)
    table = requests
    for name, typ in LINK_COLUMNS:
        if name in table.column_names:
            table = table.drop_columns([name])
        table = table.append_column(pa.field(name, typ), pa.array(out[name], typ))
    return table


def customers_waiting_for(linked: pa.Table, feature: str, *, include_after_release: bool = False) -> pa.Table:
    """The customers who asked for ``feature`` before its release (or it has no release yet): the
    audience of "you asked for it, it's live". One row per customer: ``source, customer_id,
    requests, first_requested_at, last_requested_at, channels`` (comma-separated), ``release_id,
    released_at, shipped``. ``linked`` is :func:`link_releases` output; ``include_after_release``
    also lists customers who asked only after it shipped."""
    rows = [r for r in linked.to_pylist() if r["feature"] == feature
            and (include_after_release or r["released_after_request"] is not False)]
    per: dict[tuple, dict] = {}
    for r in rows:
        key = (r["source"], r["customer_id"])
        agg = per.setdefault(key, {"source": key[0], "customer_id": key[1], "requests": 0,
                                   "first_requested_at": r["requested_at"], "last_requested_at": r["requested_at"],
                                   "channels": set(), "release_id": r["release_id"],
                                   "released_at": r["released_at"], "shipped": r["shipped"]})
        agg["requests"] += 1
        agg["first_requested_at"] = min(agg["first_requested_at"], r["requested_at"])
        agg["last_requested_at"] = max(agg["last_requested_at"], r["requested_at"])
        agg["channels"].add(r["channel"])
        if r["release_id"] and (agg["release_id"] is None or (r["released_at"], r["release_id"])
                                > (agg["released_at"], agg["release_id"])):
            agg["release_id"], agg["released_at"], agg["shipped"] = r["release_id"], r["released_at"], r["shipped"]
    out = []
    for key in sorted(per):
        agg = per[key]
        agg["channels"] = ",".join(sorted(agg["channels"]))
        out.append(agg)
    schema = pa.schema([("source", pa.string()), ("customer_id", pa.string()), ("requests", pa.int64()),
                        ("first_requested_at", pa.timestamp("us", tz="UTC")),
                        ("last_requested_at", pa.timestamp("us", tz="UTC")), ("channels", pa.string()),
                        ("release_id", pa.string()), ("released_at", pa.timestamp("us", tz="UTC")),
                        ("shipped", pa.bool_())])
    return pa.Table.from_pylist(out, schema=schema)


SUMMARY_SCHEMA = pa.schema([
    ("feature", pa.string()), ("label", pa.string()), ("requesters", pa.int64()),
    ("churned_requesters", pa.int64()), ("lost_mrr_minor", pa.int64()), ("currency", pa.string()),
    ("lost_mrr_by_currency", pa.string()), ("requests", pa.int64()),
    ("first_requested_at", pa.timestamp("us", tz="UTC")), ("last_requested_at", pa.timestamp("us", tz="UTC")),
    ("release_id", pa.string()), ("release_title", pa.string()), ("released_at", pa.timestamp("us", tz="UTC")),
    ("shipped", pa.bool_()),
])


def feature_summary(con, as_of: dt.datetime, *, catalog: FeatureCatalog | None = None,
                    requests: pa.Table | None = None) -> pa.Table:
    """One row per requested feature: ``requesters`` (distinct customers), ``churned_requesters``
    (churned at ``as_of``, :func:`churned_customers`), ``lost_mrr_minor`` (their lost MRR in
    ``currency``; null when they span currencies - ``lost_mrr_by_currency`` is a JSON object that
    always has the breakdown), ``requests``, first/last request, and the feature's release
    (:attr:`Feature.release`: the earliest shipped one, else the next planned one) with
    ``shipped``. Sorted by lost MRR, then requesters, descending."""
    catalog = catalog or FeatureCatalog.from_history(con, as_of)
    requests = requests if requests is not None else feature_requests(con, as_of, catalog=catalog)
    churned = churned_customers(con, as_of)
    lost = {(s, c): (m, cur) for s, c, m, cur in zip(*(churned.column(n).to_pylist() for n in
                                                        ("source", "customer_id", "lost_mrr_minor", "currency")))}
    per: dict[str, dict] = {}
    for r in requests.select(["source", "customer_id", "feature", "requested_at"]).to_pylist():
        agg = per.setdefault(r["feature"], {"customers": set(), "requests": 0, "first": r["requested_at"],
                                            "last": r["requested_at"]})
        agg["customers"].add((r["source"], r["customer_id"]))
        agg["requests"] += 1
        agg["first"] = min(agg["first"], r["requested_at"])
        agg["last"] = max(agg["last"], r["requested_at"])
    rows = []
    for key, agg in per.items():
        by_currency: dict[str, int] = {}
        churned_n = 0
        for customer in agg["customers"]:
            if customer in lost:
                churned_n += 1
                mrr, cur = lost[customer]
                by_currency[cur or ""] = by_currency.get(cur or "", 0) + int(mrr or 0)
        feature = catalog.features.get(key)
        release = feature.release if feature else None
        single = len(by_currency) == 1
        rows.append({
            "feature": key, "label": feature.label if feature else key.replace("_", " ").capitalize(),
            "requesters": len(agg["customers"]), "churned_requesters": churned_n,
            "lost_mrr_minor": next(iter(by_currency.values())) if single else (0 if not by_currency else None),
            "currency": next(iter(by_currency)) or None if single else None,
            "lost_mrr_by_currency": json.dumps(dict(sorted(by_currency.items())), sort_keys=True),
            "requests": agg["requests"], "first_requested_at": agg["first"], "last_requested_at": agg["last"],
            "release_id": release.release_id if release else None,
            "release_title": release.title if release else None,
            "released_at": release.released_at if release else None,
            "shipped": bool(release and release.shipped),
        })
    rows.sort(key=lambda r: (-(r["lost_mrr_minor"] or sum(json.loads(r["lost_mrr_by_currency"]).values())),
                             -r["requesters"], r["feature"]))
    return pa.Table.from_pylist(rows, schema=SUMMARY_SCHEMA)
