"""Feedback themes: what lost customers keep saying, in six language variants, ranked by how many
say it and how much MRR they took with them (DOMAIN.md step 5, "find recurring themes; rank them
by frequency and impact on churn").

Input is a feedback table (:func:`feedback_from_history` builds one): ``source, customer_id,
text`` and optionally ``language, lost_mrr_minor, currency, at, origin`` (``exit_comment``,
``cancel_comment``, ``would_return_if``, ``survey_other``, ``ticket`` ...).

How a text gets its themes
--------------------------

1. **Lexicon** (``themes_data/themes.yaml``): recurring win-back themes, each under a canonical
   reason (price increase, budget cuts, cheaper plan wanted, too expensive; reporting limits,
   mobile; too complex, onboarding unclear, slow or buggy; slow support, unresolved issue, no
   live support, onboarding help missing; switched to a competitor, cheaper competitor; stopped
   using, project ended, company closed, seasonal, moved in-house; payment problems), with cue
   phrases in en, ja, ko, uk, zh-Hans and zh-Hant, matched as in
   :class:`winback.insights.features.PhraseMatcher`.
2. **Features** (dynamic): one theme ``feature_<key>`` per catalog feature a text names
   (:class:`~winback.insights.features.FeatureCatalog`, aliases in every language); a lexicon
   theme with ``feature: <key>`` (reporting limits -> custom_reports, mobile -> mobile_app, no live
   support -> live_chat ...) absorbs that feature instead. A feature theme carries its release.
3. **Competitors** (dynamic): names are pulled from texts that hit a competitor cue ("switched to
   X", "went with X", "X に乗り換え", "перейшли на X", "换成了X", or a Latin-script name in a
   CJK/Cyrillic/Hangul sentence); a name said by at least ``min_size`` customers becomes theme
   ``competitor_<slug>`` ("Switched to X"), otherwise the text stays in ``switched_competitor``.
   Common words and feature aliases ("Salesforce", "Slack") are never taken for competitors.
4. **Weights**: a theme's weight in a text is the total length of its distinct matched cues;
   feature aliases and competitor names add :data:`SPECIFIC_BONUS`. The **primary reason** is
   the reason whose themes weigh most in total ("customer service", "unhelpful" and "slow to
   reply" are three pieces of evidence for support); when ``reasons`` (a classifier's per-text
   reason) is given, that reason's total counts :data:`REASON_BOOST` times. The **primary theme**
   is the heaviest specific theme of the primary reason; a ``generic`` theme (a missing feature,
   poor support, switched to a competitor) is used only when its reason has no specific one. The
   **secondary theme** is the next heaviest theme if it weighs at least :data:`SECONDARY_SHARE`
   of the primary (:func:`_choose`).
5. **Discovery**: texts with no theme (and a letter or digit in them) are grouped by TF-IDF over
   character n-grams (``char_wb`` 2-4, which works for CJK without a tokenizer), average-linkage
   agglomerative clustering on cosine distance with the number of clusters chosen by silhouette,
   clusters that are not cohesive (mean pairwise similarity below :data:`MIN_COHESION`, or one
   text whose mean similarity to the rest is below :data:`MIN_MEMBER_SIMILARITY`) split again,
   at most :data:`DISCOVERY_SAMPLE` texts clustered and the rest attached to the nearest cluster
   (:func:`discover_clusters`). Clusters said by at least ``min_size`` customers become themes
   marked ``discovered``, labelled by their most central quote and top n-grams; their reason is the
   majority of ``reasons`` over their members (at least half), else ``unknown``. Char n-grams
   do not cross languages: one topic in two languages gives two discovered themes (simplified
   and traditional Chinese often do meet, through their shared characters).

Ranking (the formula)
---------------------

For theme T over the feedback's customers (distinct ``(source, customer_id)`` with a usable
text; a customer counts in T when any of their texts has T as primary or secondary theme):

* ``customer_share = customers(T) / customers(all)``;
* a customer's lost MRR is the largest ``lost_mrr_minor`` on their rows (null = 0, e.g. active
  customers); per currency c, ``share_c = lost MRR of T's customers in c / lost MRR of all in c``
  and ``lost_mrr_share = sum_c w_c x share_c`` with ``w_c`` = the fraction of customers with
  lost MRR > 0 whose currency is c (so currencies are never added together; with one currency
  ``lost_mrr_share = lost MRR(T) / lost MRR(all)``);
* ``score = customer_share x lost_mrr_share`` - frequency times lost MRR, both as shares of
  this feedback's totals: unitless, in [0, 1], the same order as customers x lost MRR;
* themes are sorted by ``score`` descending, then ``customers``, then ``mentions`` (so themes
  raised only by active customers, score 0, still come in order of frequency), then ``id``.

``Theme.lost_mrr_minor`` is in ``Theme.currency``, the currency with the most lost MRR in the
whole feedback (the same for every theme); ``Theme.lost_mrr_by_currency`` has every currency.

Lexicon and feature themes are reported from one customer up; ``min_size`` (distinct customers)
applies to themes found in the data (discovered clusters, competitor names).
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pyarrow as pa
import yaml

from winback.insights.features import (
    DATA_DIR, FeatureCatalog, PhraseMatcher, _instant, _utc_ts, canonical_language, churned_customers, clean_text,
    detect_language, is_usable, normalize_text, resolve_language,
)

REASONS = ("price", "missing_feature", "usability", "support", "competitor", "other", "involuntary", "unknown")

SPECIFIC_BONUS = 10  # added to the weight of a feature alias or competitor name match
REASON_BOOST = 1.5  # weight factor for themes of the text's precomputed reason
SECONDARY_SHARE = 0.4  # a secondary theme weighs at least this share of the primary
DISCOVERY_SAMPLE = 3000  # texts clustered at most; the rest join the nearest cluster
SILHOUETTE_SAMPLE = 1000  # texts the silhouette of each candidate k is computed on
MIN_COHESION = 0.2  # mean pairwise cosine similarity of a discovered cluster's distinct texts
MIN_MEMBER_SIMILARITY = 0.12  # every text's mean cosine similarity to the other texts of its cluster
QUOTE_SAMPLE = 500  # distinct texts looked at per theme to pick representative quotes
QUOTE_CHARS = 280  # quotes are cut to this many characters

_FEATURE_LABEL = "\x00feature:"  # matcher labels of feature aliases (theme ids never start with it)
FEEDBACK_COLUMNS = ("source", "customer_id", "text", "language", "lost_mrr_minor", "currency", "at", "origin")


# ================================================================================ lexicon

@dataclass(frozen=True)
class ThemeSpec:
    """One lexicon theme (see ``themes_data/themes.yaml`` for the format)."""

    id: str
    reason: str
    label: str
    cues: Mapping[str, tuple[str, ...]]
    generic: bool = False
    feature: str | None = None


@functools.lru_cache(maxsize=4)
def _load_lexicon(path: str) -> tuple[ThemeSpec, ...]:
    with open(path, encoding="utf-8") as fh:
        data = yaml.safe_load(fh) or {}
    specs = []
    seen = set()
    for item in data.get("themes") or ():
        theme_id = str(item["id"])
        if theme_id in seen:
            raise ValueError(f"{path}: theme id {theme_id!r} appears twice")
        seen.add(theme_id)
        reason = str(item["reason"])
        if reason not in REASONS:
            raise ValueError(f"{path}: theme {theme_id!r} has unknown reason {reason!r}")
        cues = {str(lang): tuple(str(c) for c in (phrases or ())) for lang, phrases in (item.get("cues") or {}).items()}
        specs.append(ThemeSpec(theme_id, reason, str(item.get("label") or theme_id), cues,
                               bool(item.get("generic", False)), item.get("feature")))
    return tuple(specs)


def load_lexicon(path: str | Path | None = None) -> tuple[ThemeSpec, ...]:
    """The theme lexicon (the shipped one unless ``path`` is given)."""
    return _load_lexicon(str(path or DATA_DIR / "themes.yaml"))


# ================================================================================ results

@dataclass
class Theme:
    """A recurring theme. ``quotes`` are dicts ``{text, language, source, customer_id, origin}``;
    ``release`` is ``{release_id, title, released_at, shipped, kind, feature}`` when the theme's
    feature has a release (the earliest shipped one, else the next planned one)."""

    id: str
    label: str
    reason: str
    customers: int
    mentions: int
    lost_mrr_minor: int
    currency: str | None
    score: float
    customer_share: float
    lost_mrr_share: float
    languages: dict[str, int]
    quotes: list[dict]
    feature: str | None = None
    release: dict | None = None
    discovered: bool = False
    competitor: str | None = None
    top_terms: list[str] = field(default_factory=list)
    primary_mentions: int = 0
    origins: dict[str, int] = field(default_factory=dict)
    lost_mrr_by_currency: dict[str, int] = field(default_factory=dict)
    members: list[tuple[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["members"] = [list(m) for m in self.members]
        return out


@dataclass
class ThemeAnalysis:
    themes: list[Theme]
    assignments: pa.Table


# ================================================================================ input

def _coerce_feedback(feedback: Any) -> pa.Table:
    if isinstance(feedback, pa.Table):
        table = feedback
    elif hasattr(feedback, "to_pyarrow"):
        table = feedback.to_pyarrow()
    elif isinstance(feedback, (str, bytes)):
        raise TypeError("feedback must be a table or a sequence of texts, not one string")
    else:
        items = list(feedback)
        if items and isinstance(items[0], Mapping):
            table = pa.Table.from_pylist([dict(r) for r in items])
        else:
            table = pa.table({"text": pa.array([None if t is None else _valid_utf8(str(t)) for t in items], pa.string())})
    if "text" not in table.column_names:
        raise ValueError(f"feedback has no 'text' column (columns: {', '.join(table.column_names)})")
    return table


def _valid_utf8(text: str) -> str:
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:  # lone surrogates
        return text.encode("utf-8", "replace").decode("utf-8")


def _column(table: pa.Table, name: str, default: Any = None) -> list:
    if name in table.column_names:
        return table.column(name).to_pylist()
    return [default] * table.num_rows


# ================================================================================ competitors

_NAME = r"([A-Z][A-Za-z0-9]{2,}(?:[.\-&][A-Za-z0-9]+)*)"
_EN_COMPETITOR = [re.compile(p) for p in (
    r"\b(?i:switch(?:ed|ing)?|mov(?:e|ed|ing)|migrat(?:e|ed|ing)|went|go(?:ing)?|chang(?:e|ed|ing)|jump(?:ed|ing)?"
    r"|over)(?:\s+(?i:everything|all|over|back|it|our\s+\w+))?\s+(?i:to|with)\s+(?:the\s+)?" + _NAME,
    r"\b(?i:chose|picked|prefers?|preferred|selected|signed up (?:for|with)|replaced (?:you|it|this) with)\s+" + _NAME,
    r"\b(?i:alternative|competitor)\s*[(:,\-\u2014\u2013]?\s*\(?" + _NAME,
    _NAME + r"\s+(?i:offered|offers|gave us|is cheaper|was cheaper|does the same|has better|is better|beats)",
)]
_LATIN_NAME = re.compile(r"(?<![A-Za-z0-9])([A-Z][A-Za-z0-9]{2,}(?:[.\-&][A-Za-z0-9]+)*)")
_CYRILLIC_NAME = re.compile(r"(?:перейшли|переходимо|перейшов|перейшла|перейти|обрали|перенесли все|обираємо)"
                            r"\s+(?:на|до|в|у)?\s*[«\"]?([А-ЯІЇЄҐ][\w'\-]{2,})")
_KATAKANA_NAME = re.compile(r"([\u30a1-\u30fa\u30fc]{3,})(?:に乗り換え|へ乗り換え|に移行|へ移行|に統一|にしました)")
_NAME_STOPWORDS = frozenset("""
a an the we i our us they their them it its you your he she this that these those my me
api crm sso app apps ios android saas ai ui ux it ok hr erp sql faq vip pro plus premium basic starter
business enterprise team teams plan plans tier integration support product service tool tools software
yes no not but and or so because also just now then when after before honestly sorry thanks thank
moving found went switched migrated chose our new old monthly annual excel pdf csv email gmail google
""".split())


def _competitor_candidates(raw: str, language: str) -> list[str]:
    names: list[str] = []
    if language == "en":
        for pattern in _EN_COMPETITOR:
            names.extend(m.group(1) for m in pattern.finditer(raw))
    else:
        names.extend(_LATIN_NAME.findall(raw))
        if language in ("uk", "ru"):
            names.extend(_CYRILLIC_NAME.findall(raw))
        if language == "ja":
            names.extend(_KATAKANA_NAME.findall(raw))
    return [n.strip(".-&") for n in names]


def _slug(text: str) -> str:
    slug = re.sub(r"[^0-9a-z]+", "_", normalize_text(text)).strip("_")
    if not slug:
        slug = hashlib.sha1(text.encode("utf-8")).hexdigest()[:8]
    return slug


# ================================================================================ discovery

@dataclass
class DiscoveredCluster:
    members: list[int]  # indices into the texts given to :func:`discover_clusters`
    similarity: list[float]  # cosine similarity of each member to the centroid
    central: int  # the most central member
    top_terms: list[str]
    cohesion: float


def _vectorizer(n_docs: int):
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True, lowercase=False,
                           min_df=1 if n_docs < 200 else 2, max_features=200_000, dtype=np.float32)


_TERM_WORD = re.compile(r"[0-9a-z\u00df-\u024f\u0400-\u052f']{3,}|[\uac00-\ud7a3]{2,}")
_TERM_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff]{2,}")
_TERM_STOPWORDS = frozenset("""
the and for with our you your this that was were are have has had not but can how what when where why who
about from will would there they them their its it's i'm don't can't didn't doesn't isn't just very also
into than then too all any one out get got been being more most some such only own same other please
""".split())


def _terms(text: str) -> set[str]:
    """Words (Latin, Cyrillic, Hangul) and CJK 2-6-grams of a normalised text, for labels."""
    text = text[:500]
    terms = {w.strip("'") for w in _TERM_WORD.findall(text)} - _TERM_STOPWORDS
    for run in _TERM_CJK.findall(text):
        for size in (2, 3, 4, 5, 6):
            terms.update(run[k:k + size] for k in range(len(run) - size + 1))
    return {t for t in terms if len(t) >= 2}


def _top_terms(members: Sequence[int], term_sets: Mapping[int, set], doc_freq: Counter, n_docs: int,
               weights: np.ndarray, k: int = 5) -> list[str]:
    """The words / CJK n-grams most typical of a cluster: share of its texts that contain them
    times their inverse document frequency among all texts clustered; longer n-grams win over
    the shorter ones inside them."""
    inside: Counter = Counter()
    total = 0.0
    for m in members:
        if m in term_sets:
            total += weights[m]
            for term in term_sets[m]:
                inside[term] += weights[m]
    if not total:
        return []
    scored = sorted(((share / total) * np.log((n_docs + 1) / (doc_freq[t] + 1)), len(t), t, share / total)
                    for t, share in inside.items() if share / total >= 0.25)
    picked: list[tuple[str, float]] = []
    for score, _, term, share in reversed(scored):
        if any(term in p for p, _ in picked):
            continue
        if _TERM_CJK.fullmatch(term) and any(term[:2] in p or term[-2:] in p for p, _ in picked):
            continue  # overlaps a longer n-gram already picked
        longer_than = [p for p, s in picked if p in term and share >= 0.8 * s]
        picked = [(p, s) for p, s in picked if p not in longer_than]
        if len(picked) < k:
            picked.append((term, share))
    return [p for p, _ in picked]


def discover_clusters(texts: Sequence[str], weights: Sequence[int] | None = None, *, min_size: int = 3,
                      random_state: int = 0) -> list[DiscoveredCluster]:
    """Group similar texts (normalised, distinct).

    TF-IDF over ``char_wb`` 2-4-grams; average-linkage clustering on cosine distance with k chosen
    by silhouette (:func:`_cluster`), and every cluster that is not cohesive - mean pairwise cosine
    similarity of its distinct texts below :data:`MIN_COHESION`, or one text whose mean similarity
    to the others is below :data:`MIN_MEMBER_SIMILARITY` - split again the same way. At most
    :data:`DISCOVERY_SAMPLE` texts are clustered; any other text joins the cluster whose texts it
    is most similar to on average, if that average is at least :data:`MIN_MEMBER_SIMILARITY`. A cluster is kept when its total ``weights`` (how many feedback
    rows each text stands for) reach ``min_size``: one text repeated ``min_size`` times is a
    cluster too. Members are ordered by similarity to the frequency-weighted centroid, the
    first being the most central. Deterministic for given inputs.
    """
    n = len(texts)
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
    if n == 0 or w.sum() < min_size:
        return []
    try:
        X = _vectorizer(n).fit_transform(texts)
    except ValueError:  # empty vocabulary
        return []
    rng = np.random.default_rng(random_state)
    sample = np.arange(n) if n <= DISCOVERY_SAMPLE else np.sort(rng.choice(n, DISCOVERY_SAMPLE, replace=False))
    groups = _cohesive_groups(X, sample, w, min_size, random_state, depth=0)
    if not groups:
        return []
    members = [list(g) for g in groups]
    if sample.size < n:
        rest = np.setdiff1d(np.arange(n), sample)
        means = np.vstack([np.asarray(X[g].mean(axis=0)).ravel() for g in groups]).astype(np.float32)
        for start in range(0, rest.size, 20_000):
            chunk = rest[start:start + 20_000]
            sims = np.asarray(X[chunk] @ means.T)
            best = sims.argmax(axis=1)
            ok = sims[np.arange(chunk.size), best] >= MIN_MEMBER_SIMILARITY
            for i, g in zip(chunk[ok], best[ok]):
                members[g].append(int(i))
    term_sets = {int(m): _terms(texts[m]) for m in sample}
    doc_freq: Counter = Counter()
    for terms in term_sets.values():
        doc_freq.update(terms)
    clusters: list[DiscoveredCluster] = []
    for group in members:
        idx = np.asarray(sorted(group), dtype=np.int64)
        if w[idx].sum() < min_size:
            continue
        centroid = _centroid(X, idx, w)
        member_sim = np.asarray(X[idx] @ centroid).ravel()
        order = np.lexsort((idx, -member_sim))
        clusters.append(DiscoveredCluster(
            members=idx[order].tolist(), similarity=member_sim[order].tolist(), central=int(idx[order[0]]),
            top_terms=_top_terms(idx.tolist(), term_sets, doc_freq, len(term_sets), w),
            cohesion=_cohesion(X, idx)))
    clusters.sort(key=lambda c: (-float(w[c.members].sum()), c.central))
    return clusters


def _centroid(X, idx: np.ndarray, w: np.ndarray) -> np.ndarray:
    centroid = np.asarray((X[idx].T @ w[idx]).ravel()) / w[idx].sum()
    norm = np.linalg.norm(centroid)
    return centroid / norm if norm else centroid


def _cohesion(X, idx: np.ndarray) -> float:
    """Mean pairwise cosine similarity of the rows ``idx`` of ``X`` (l2-normalised); 1 for one row."""
    k = idx.size
    if k < 2:
        return 1.0
    total = np.asarray(X[idx].sum(axis=0)).ravel()
    return float((total @ total - k) / (k * (k - 1)))


def _is_cohesive(X, idx: np.ndarray) -> bool:
    """Mean pairwise similarity at least :data:`MIN_COHESION` and no text whose mean similarity
    to the others is below :data:`MIN_MEMBER_SIMILARITY` (one odd text out splits the group)."""
    k = idx.size
    if k < 2:
        return True
    M = X[idx]
    total = np.asarray(M.sum(axis=0)).ravel()
    pairwise = float((total @ total - k) / (k * (k - 1)))
    to_others = (np.asarray(M @ total).ravel() - 1.0) / (k - 1)
    return pairwise >= MIN_COHESION and float(to_others.min()) >= MIN_MEMBER_SIMILARITY


def _cohesive_groups(X, idx: np.ndarray, w: np.ndarray, min_size: int, random_state: int, depth: int) -> list:
    """Split ``idx`` (rows of ``X``) until every group is cohesive (:func:`_is_cohesive`); groups
    lighter than ``min_size`` are dropped."""
    if w[idx].sum() < min_size:
        return []
    if _is_cohesive(X, idx):
        return [idx]
    if idx.size < 2 or depth >= 12:
        return []
    labels = _cluster(X[idx], random_state)
    if np.unique(labels).size < 2:
        return []
    out = []
    for label in np.unique(labels):
        out.extend(_cohesive_groups(X, idx[labels == label], w, min_size, random_state, depth + 1))
    return out


def _cluster(X, random_state: int) -> np.ndarray:
    """Cluster labels for the rows of ``X`` (l2-normalised TF-IDF): average linkage on cosine
    distance, cut at the k (2 .. n-1) with the best silhouette."""
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform
    from sklearn.metrics import silhouette_score

    n = X.shape[0]
    if n < 3:
        sim = (X @ X.T).toarray()
        return np.array([0, 0]) if n == 2 and sim[0, 1] >= 0.5 else np.arange(n)
    S = (X @ X.T).toarray().astype(np.float64)
    D = np.clip(1.0 - S, 0.0, 2.0)
    np.fill_diagonal(D, 0.0)
    D = (D + D.T) / 2
    Z = linkage(squareform(D, checks=False), method="average")
    upper = n - 1
    candidates = sorted(set(np.unique(np.geomspace(2, upper, num=min(30, upper - 1)).astype(int)).tolist()) | {2})
    best_labels, best_score = np.zeros(n, dtype=int), -np.inf
    sample_size = min(n, SILHOUETTE_SAMPLE)
    for k in candidates:
        labels = fcluster(Z, t=k, criterion="maxclust")
        n_labels = len(np.unique(labels))
        if n_labels < 2 or n_labels >= n:
            continue
        try:
            score = silhouette_score(D, labels, metric="precomputed",
                                     sample_size=sample_size if sample_size < n else None, random_state=random_state)
        except ValueError:  # the sample drew a single label or only singletons
            continue
        if score > best_score + 1e-12:
            best_score, best_labels = score, labels
    return best_labels


# ================================================================================ analysis

def analyse_feedback(feedback: Any, *, reasons: Sequence[str | None] | None = None,
                     features: FeatureCatalog | None = None, min_size: int = 3, quotes_per_theme: int = 3,
                     competitors: Sequence[str] = (), lexicon: Sequence[ThemeSpec] | None = None,
                     discover: bool = True) -> ThemeAnalysis:
    """Themes and per-text assignments in one pass (see the module docstring)."""
    table = _coerce_feedback(feedback)
    n = table.num_rows
    if reasons is not None and len(reasons) != n:
        raise ValueError(f"reasons has {len(reasons)} entries for {n} feedback rows")
    min_size = max(1, int(min_size))
    specs = tuple(lexicon if lexicon is not None else load_lexicon())
    catalog = features if features is not None else FeatureCatalog.builtin()

    raw_texts = _column(table, "text")
    sources = ["" if s is None else str(s) for s in _column(table, "source", "")]
    customer_ids = _column(table, "customer_id")
    given_lang = _column(table, "language")
    lost = _column(table, "lost_mrr_minor", 0)
    currencies = _column(table, "currency")
    origins = _column(table, "origin")

    # ---- distinct normalised texts
    norm_of_row: list[int] = []
    uniq: dict[str, int] = {}
    first_row: list[int] = []
    for i, raw in enumerate(raw_texts):
        norm = normalize_text(raw)
        if not is_usable(norm):
            norm_of_row.append(-1)
            continue
        j = uniq.get(norm)
        if j is None:
            j = uniq[norm] = len(uniq)
            first_row.append(i)
        norm_of_row.append(j)
    norms = list(uniq)
    u = len(norms)
    row_u = np.asarray(norm_of_row, dtype=np.int64)
    rows_per_u = np.bincount(row_u[row_u >= 0], minlength=u) if u else np.zeros(0, dtype=np.int64)

    detected = [detect_language(norm) for norm in norms]
    languages = [resolve_language(given_lang[i], norms[row_u[i]], detected[row_u[i]]) if row_u[i] >= 0 else
                 (canonical_language(given_lang[i]) or "und") for i in range(n)]
    keys = [(sources[i], str(customer_ids[i])) if customer_ids[i] is not None else (sources[i], f"\x00row{i}")
            for i in range(n)]

    # ---- the matcher: lexicon cues + feature aliases
    spec_by_id = {s.id: s for s in specs}
    feature_theme: dict[str, str] = {}  # catalog key -> theme id
    theme_feature: dict[str, str] = {}  # theme id -> catalog key
    for spec in specs:
        found = catalog.find(spec.feature) if spec.feature else None
        if found is not None:
            theme_feature[spec.id] = found.key
            feature_theme[found.key] = spec.id
    phrases: dict[str, list[str]] = {}
    conjunctions: list[tuple[tuple[str, ...], str]] = []  # (normalised parts, theme id)
    for spec in specs:
        for cues in spec.cues.values():
            for cue in cues:
                if " + " in cue:
                    parts = tuple(p for p in (normalize_text(x) for x in cue.split(" + ")) if p)
                    if parts:
                        conjunctions.append((parts, spec.id))
                else:
                    phrases.setdefault(cue, []).append(spec.id)
    for feature in catalog:  # one scan finds cues and feature aliases
        for alias in feature.aliases:
            phrases.setdefault(alias, []).append(_FEATURE_LABEL + feature.key)
    lex_matcher = PhraseMatcher(phrases)
    reason_of: dict[str, str] = {s.id: s.reason for s in specs}
    generic = {s.id for s in specs if s.generic}
    for feature in catalog:
        theme_id = feature_theme.get(feature.key, f"feature_{feature.key}")
        reason_of.setdefault(theme_id, "missing_feature")
        theme_feature.setdefault(theme_id, feature.key)

    lex_hits: list[dict[str, float]] = []
    feature_hits: list[list[str]] = []
    for norm in norms:
        weights: dict[str, float] = {}
        found_features: list[str] = []
        for phrase in lex_matcher.phrases_in(norm):
            for label in lex_matcher.labels[phrase]:
                if label.startswith(_FEATURE_LABEL):
                    key = label[len(_FEATURE_LABEL):]
                    theme_id = feature_theme.get(key, f"feature_{key}")
                    weights[theme_id] = weights.get(theme_id, 0.0) + len(phrase) + SPECIFIC_BONUS
                    if key not in found_features:
                        found_features.append(key)
                else:
                    weights[label] = weights.get(label, 0.0) + len(phrase)
        for parts, theme_id in conjunctions:
            if parts[0] in norm and all(part in norm for part in parts[1:]):
                weights[theme_id] = weights.get(theme_id, 0.0) + sum(len(part) for part in parts)
        lex_hits.append(weights)
        feature_hits.append(found_features)

    # ---- competitor names
    feature_words = {normalize_text(a) for f in catalog for a in f.aliases}
    name_customers: dict[str, set] = {}
    display: dict[str, Counter] = {}
    competitor_reason_hit = [any(reason_of.get(t) == "competitor" for t in h) for h in lex_hits]
    candidates: set[str] = {normalize_text(c) for c in competitors if normalize_text(c)}
    for c in competitors:
        display.setdefault(normalize_text(c), Counter())[clean_text(c)] += 1
    for j in range(u):
        if not competitor_reason_hit[j]:
            continue
        i = first_row[j]
        raw = clean_text(raw_texts[i])
        for name in _competitor_candidates(raw, languages[i]):
            low = normalize_text(name)
            if low in _NAME_STOPWORDS or low in feature_words or len(low) < 3:
                continue
            candidates.add(low)
            display.setdefault(low, Counter())[name] += 1
    name_matcher = PhraseMatcher({c: [c] for c in candidates}) if candidates else None
    names_in: list[list[str]] = [[] for _ in range(u)]
    if name_matcher is not None:
        for j, norm in enumerate(norms):
            names_in[j] = name_matcher.labels_in(norm)
        for i in range(n):
            j = row_u[i]
            if j >= 0:
                for name in names_in[j]:
                    name_customers.setdefault(name, set()).add(keys[i])
    named = {name for name, custs in name_customers.items() if len(custs) >= min_size}
    competitor_theme = {name: f"competitor_{_slug(name)}" for name in sorted(named)}
    competitor_name = {theme_id: display[name].most_common(1)[0][0] for name, theme_id in competitor_theme.items()}
    for theme_id in competitor_theme.values():
        reason_of[theme_id] = "competitor"
    for j in range(u):
        for name in names_in[j]:
            if name in competitor_theme:
                lex_hits[j][competitor_theme[name]] = lex_hits[j].get(competitor_theme[name], 0.0) \
                    + len(name) + SPECIFIC_BONUS

    # ---- per-row primary / secondary
    primary: list[str | None] = [None] * n
    secondary: list[str | None] = [None] * n
    chosen: dict[tuple[int, str | None], tuple[str | None, str | None]] = {}
    for i in range(n):
        j = int(row_u[i])
        if j < 0 or not lex_hits[j]:
            continue
        boost = reasons[i] if reasons is not None and len(lex_hits[j]) > 1 else None
        pick = chosen.get((j, boost))
        if pick is None:
            pick = chosen[(j, boost)] = _choose(lex_hits[j], reason_of, generic, boost)
        primary[i], secondary[i] = pick

    # ---- discovery over texts without a theme
    discovered_info: dict[str, dict] = {}
    if discover:
        open_u = [j for j in range(u) if not lex_hits[j]]
        if open_u:
            clusters = discover_clusters([norms[j] for j in open_u], rows_per_u[open_u], min_size=min_size)
            cluster_of_u: dict[int, str] = {}
            for cluster in clusters:
                central_u = open_u[cluster.central]
                theme_id = "discovered_" + hashlib.sha1(norms[central_u].encode("utf-8")).hexdigest()[:10]
                if theme_id in discovered_info:
                    continue
                members_u = [open_u[m] for m in cluster.members]
                discovered_info[theme_id] = {"cluster": cluster, "members_u": members_u, "central_u": central_u}
                for m in members_u:
                    cluster_of_u[m] = theme_id
            rows_of: dict[str, list[int]] = {}
            for i in range(n):
                j = int(row_u[i])
                if j >= 0 and j in cluster_of_u:
                    rows_of.setdefault(cluster_of_u[j], []).append(i)
            for theme_id in list(discovered_info):
                rows = rows_of.get(theme_id, [])
                if len({keys[i] for i in rows}) < min_size:  # size in distinct customers
                    del discovered_info[theme_id]
                    continue
                for i in rows:
                    primary[i] = theme_id
                votes = Counter(reasons[i] for i in rows
                                if reasons is not None and reasons[i] and reasons[i] != "unknown")
                reason = "unknown"
                if votes:
                    top, count = votes.most_common(1)[0]
                    if count * 2 >= len(rows):
                        reason = top
                reason_of[theme_id] = reason

    themes = _build_themes(
        n=n, primary=primary, secondary=secondary, keys=keys, languages=languages, lost=lost,
        currencies=currencies, origins=origins, raw_texts=raw_texts, norms=norms, row_u=row_u, first_row=first_row,
        reason_of=reason_of, spec_by_id=spec_by_id, catalog=catalog, theme_feature=theme_feature,
        competitor_name=competitor_name, discovered_info=discovered_info, quotes_per_theme=quotes_per_theme,
    )
    assignments = _assignment_table(n, sources, customer_ids, languages, primary, secondary, reason_of,
                                    row_u, names_in, display, feature_hits)
    return ThemeAnalysis(themes, assignments)


def _choose(weights: Mapping[str, float], reason_of: Mapping[str, str], generic: set,
            boost_reason: str | None = None) -> tuple[str | None, str | None]:
    """Primary and secondary theme of one text from its theme weights.

    The primary reason is the one whose themes weigh most in total (generic ones included: "customer
    service", "unhelpful" and "slow to reply" are three pieces of evidence for support), times
    :data:`REASON_BOOST` for ``boost_reason``; the primary theme is that reason's heaviest specific
    theme (its generic one if it has no other). The secondary is the heaviest remaining theme, a
    generic one only if its reason has no specific theme, weighing at least
    :data:`SECONDARY_SHARE` of the primary."""
    if not weights:
        return None, None
    totals: dict[str, float] = {}
    for theme_id, value in weights.items():
        totals[reason_of[theme_id]] = totals.get(reason_of[theme_id], 0.0) + value
    if boost_reason in totals:
        totals[boost_reason] *= REASON_BOOST
    best = max(totals, key=lambda r: (totals[r], max(v for t, v in weights.items() if reason_of[t] == r), r))
    within = [(t, v) for t, v in weights.items() if reason_of[t] == best]
    specific = [(t, v) for t, v in within if t not in generic] or within
    first = min(specific, key=lambda kv: (-kv[1], kv[0]))[0]
    has_specific = {reason_of[t] for t in weights if t not in generic}
    rest = [(t, v) for t, v in weights.items()
            if t != first and not (t in generic and reason_of[t] in has_specific)]
    if not rest:
        return first, None
    second, value = min(rest, key=lambda kv: (-kv[1], kv[0]))
    return first, (second if value >= SECONDARY_SHARE * weights[first] else None)


def _assignment_table(n, sources, customer_ids, languages, primary, secondary, reason_of, row_u, names_in,
                      display, feature_hits) -> pa.Table:
    competitor_col, features_col = [], []
    for i in range(n):
        j = row_u[i]
        names = names_in[j] if j >= 0 else []
        competitor_col.append(display[names[0]].most_common(1)[0][0] if names else None)
        features_col.append(list(feature_hits[j]) if j >= 0 else [])
    return pa.table({
        "row": pa.array(np.arange(n, dtype=np.int64)),
        "source": pa.array(sources, pa.string()),
        "customer_id": pa.array([None if c is None else str(c) for c in customer_ids], pa.string()),
        "language": pa.array(languages, pa.string()),
        "primary": pa.array(primary, pa.string()),
        "secondary": pa.array(secondary, pa.string()),
        "reason": pa.array([reason_of.get(p) if p else None for p in primary], pa.string()),
        "competitor": pa.array(competitor_col, pa.string()),
        "features": pa.array(features_col, pa.list_(pa.string())),
    })


def _int(value: Any) -> int:
    try:
        return max(int(value), 0) if value is not None else 0
    except (TypeError, ValueError):
        return 0


def _build_themes(*, n, primary, secondary, keys, languages, lost, currencies, origins, raw_texts, norms, row_u, first_row,
                  reason_of, spec_by_id, catalog, theme_feature, competitor_name, discovered_info,
                  quotes_per_theme) -> list[Theme]:
    # customers with usable feedback, their lost MRR (largest on their rows) and currency
    customer_lost: dict[tuple, tuple[int, str]] = {}
    for i in range(n):
        if row_u[i] < 0:
            continue
        value = _int(lost[i])
        cur = currencies[i] or ""
        if keys[i] not in customer_lost or value > customer_lost[keys[i]][0]:
            customer_lost[keys[i]] = (value, cur)
    total_customers = len(customer_lost)
    total_lost: Counter = Counter()
    lost_customers: Counter = Counter()
    for value, cur in customer_lost.values():
        if value > 0:
            total_lost[cur] += value
            lost_customers[cur] += 1
    n_lost_customers = sum(lost_customers.values())
    main_currency = max(total_lost, key=lambda c: (total_lost[c], c)) if total_lost else None

    rows_of: dict[str, list[int]] = {}
    for i in range(n):
        for theme_id in (primary[i], secondary[i]):
            if theme_id:
                rows_of.setdefault(theme_id, []).append(i)
    themes = []
    for theme_id, rows in rows_of.items():
        members = sorted({keys[i] for i in rows})
        by_currency: Counter = Counter()
        for key in members:
            value, cur = customer_lost.get(key, (0, ""))
            if value > 0:
                by_currency[cur] += value
        customer_share = len(members) / total_customers if total_customers else 0.0
        lost_share = sum((lost_customers[c] / n_lost_customers) * (by_currency[c] / total_lost[c])
                         for c in by_currency if total_lost[c]) if n_lost_customers else 0.0
        spec = spec_by_id.get(theme_id)
        info = discovered_info.get(theme_id)
        feature_key = theme_feature.get(theme_id)
        feature = catalog.features.get(feature_key) if feature_key else None
        release = None
        if feature is not None and feature.release is not None:
            release = feature.release.to_dict()
        if spec is not None:
            label = spec.label
        elif theme_id in competitor_name:
            label = f"Switched to {competitor_name[theme_id]}"
        elif info is not None:
            central = clean_text(raw_texts[first_row[info["central_u"]]])
            label = "Discovered: " + (central if len(central) <= 60 else central[:59] + "\u2026")
        else:
            label = f"Needs {feature.label if feature else (feature_key or theme_id)}"
        themes.append(Theme(
            id=theme_id, label=label, reason=reason_of.get(theme_id, "unknown"),
            customers=len(members),
            mentions=len(rows), lost_mrr_minor=int(by_currency.get(main_currency, 0)) if main_currency else 0,
            currency=main_currency or None, score=customer_share * lost_share,
            customer_share=customer_share, lost_mrr_share=lost_share,
            languages=dict(Counter(languages[i] for i in rows).most_common()),
            quotes=[], feature=feature_key, release=release, discovered=info is not None,
            competitor=competitor_name.get(theme_id),
            top_terms=list(info["cluster"].top_terms) if info else [],
            primary_mentions=sum(1 for i in rows if primary[i] == theme_id),
            origins=dict(Counter(origins[i] or "unknown" for i in rows).most_common()),
            lost_mrr_by_currency={c or "": int(v) for c, v in sorted(by_currency.items())},
            members=[k for k in members if not k[1].startswith("\x00")],
        ))
    themes.sort(key=lambda t: (-t.score, -t.customers, -t.mentions, t.id))
    ranked_texts = {theme_id: info["members_u"] for theme_id, info in discovered_info.items()}
    _attach_quotes(themes, primary, secondary, raw_texts, norms, row_u, keys, languages, origins, quotes_per_theme,
                   ranked_texts)
    return themes


def _attach_quotes(themes, primary, secondary, raw_texts, norms, row_u, keys, languages, origins,
                   quotes_per_theme, ranked_texts: Mapping[str, list[int]]) -> None:
    """The most typical texts of each theme (cosine similarity of TF-IDF char n-grams to the
    theme's centroid; texts where it is the primary theme before those where it is secondary),
    one per language first, then the next most typical. ``ranked_texts`` gives that order for
    themes that already have it (discovered clusters)."""
    if quotes_per_theme <= 0 or not themes:
        return
    rng = np.random.default_rng(0)
    per_theme: dict[str, dict[int, int]] = {}  # theme -> distinct text -> a row
    counts: dict[str, Counter] = {}
    for i in range(len(primary)):
        j = int(row_u[i])
        if j < 0:
            continue
        for theme_id in (primary[i], secondary[i]):
            if theme_id:
                per_theme.setdefault(theme_id, {}).setdefault(j, i)
                counts.setdefault(theme_id, Counter())[j] += 1
    # prefer texts where the theme is primary
    prim: dict[str, set] = {}
    for i in range(len(primary)):
        if primary[i] and row_u[i] >= 0:
            prim.setdefault(primary[i], set()).add(int(row_u[i]))
    chosen: dict[str, list[int]] = {}
    all_u: set[int] = set()
    for theme in themes:
        if theme.id in ranked_texts:
            continue
        texts = per_theme.get(theme.id, {})
        pool = sorted(texts)
        if len(pool) > QUOTE_SAMPLE:
            pool = sorted(rng.choice(pool, QUOTE_SAMPLE, replace=False).tolist())
        chosen[theme.id] = pool
        all_u.update(pool)
    order = sorted(all_u)
    X = None
    if order:
        try:
            X = _vectorizer(len(order)).fit_transform([norms[j] for j in order])
        except ValueError:
            X = None
    position = {j: p for p, j in enumerate(order)}
    for theme in themes:
        if theme.id in ranked_texts:
            ranked = [j for j in ranked_texts[theme.id] if j in per_theme.get(theme.id, {})]
            theme.quotes = _quotes(ranked, per_theme[theme.id], raw_texts, keys, languages, origins,
                                   quotes_per_theme)
            continue
        pool = chosen[theme.id]
        if not pool:
            continue
        weights = np.array([counts[theme.id][j] for j in pool], dtype=np.float64)
        if X is not None:
            M = X[[position[j] for j in pool]]
            centroid = np.asarray(M.T @ weights).ravel() / weights.sum()
            sims = np.asarray(M @ centroid).ravel()
        else:
            sims = weights
        only_secondary = np.array([j not in prim.get(theme.id, ()) for j in pool])
        ranked = [pool[k] for k in np.lexsort((np.arange(len(pool)), -weights, -sims, only_secondary))]
        theme.quotes = _quotes(ranked, per_theme[theme.id], raw_texts, keys, languages, origins, quotes_per_theme)


def _quotes(ranked: list[int], row_of: Mapping[int, int], raw_texts, keys, languages, origins,
            quotes_per_theme: int) -> list[dict]:
    """Up to ``quotes_per_theme`` of the distinct texts ``ranked`` (most typical first): the first
    of each language, then the next ones, listed in their typicality order."""
    picked: list[int] = []
    seen_lang: set[str] = set()
    for j in ranked:
        lang = languages[row_of[j]]
        if lang not in seen_lang:
            seen_lang.add(lang)
            picked.append(j)
        if len(picked) >= quotes_per_theme:
            break
    for j in ranked:
        if len(picked) >= quotes_per_theme:
            break
        if j not in picked:
            picked.append(j)
    rank = {j: r for r, j in enumerate(ranked)}
    picked.sort(key=lambda j: rank[j])
    quotes = []
    for j in picked:
        i = row_of[j]
        text = clean_text(raw_texts[i])
        if len(text) > QUOTE_CHARS:
            text = text[: QUOTE_CHARS - 1] + "\u2026"
        key = keys[i]
        quotes.append({"text": text, "language": languages[i], "source": key[0],
                       "customer_id": None if key[1].startswith("\x00") else key[1], "origin": origins[i]})
    return quotes


# ================================================================================ public API

def find_themes(feedback: Any, *, reasons: Sequence[str | None] | None = None, features: FeatureCatalog | None = None,
                min_size: int = 3, quotes_per_theme: int = 3, competitors: Sequence[str] = (),
                lexicon: Sequence[ThemeSpec] | None = None) -> list[Theme]:
    """Recurring themes of ``feedback``, sorted by score (see the module docstring for the rules
    and the ranking formula).

    ``feedback`` is an Arrow table (or rows, or a list of texts) with ``source, customer_id, text``
    and optionally ``language, lost_mrr_minor, currency, at, origin``; ``reasons`` is an optional
    per-row canonical reason from a classifier; ``features`` the feature catalog (default: the
    built-in alias list, no releases); ``competitors`` known competitor names.
    """
    return analyse_feedback(feedback, reasons=reasons, features=features, min_size=min_size,
                            quotes_per_theme=quotes_per_theme, competitors=competitors, lexicon=lexicon).themes


def theme_assignments(feedback: Any, *, reasons: Sequence[str | None] | None = None,
                      features: FeatureCatalog | None = None, min_size: int = 3, competitors: Sequence[str] = (),
                      lexicon: Sequence[ThemeSpec] | None = None) -> pa.Table:
    """Per feedback row: ``row`` (its index), ``source, customer_id, language, primary, secondary``
    (theme ids or null), ``reason`` (the primary theme's reason), ``competitor`` (a competitor
    named in the text) and ``features`` (catalog feature keys named in it)."""
    return analyse_feedback(feedback, reasons=reasons, features=features, min_size=min_size, quotes_per_theme=0,
                            competitors=competitors, lexicon=lexicon).assignments


FEEDBACK_SCHEMA = pa.schema([
    ("source", pa.string()), ("customer_id", pa.string()), ("text", pa.string()), ("language", pa.string()),
    ("lost_mrr_minor", pa.int64()), ("currency", pa.string()), ("at", pa.timestamp("us", tz="UTC")),
    ("origin", pa.string()),
])


def feedback_from_history(con, as_of: dt.datetime, *, include_tickets: bool = True) -> pa.Table:
    """The feedback table of a history at ``as_of``: survey answers with text (``exit_comment`` for
    the exit survey's comment, ``would_return_if``, ``survey_other``), cancellation comments
    (``cancel_comment``) and, unless ``include_tickets`` is false, ticket subjects (``ticket``).
    ``language`` is the survey's language or the customer's locale; ``lost_mrr_minor`` and
    ``currency`` come from :func:`~winback.insights.features.churned_customers` (0 and null for
    customers who are not churned at ``as_of``)."""
    import ibis

    t = _instant(as_of)
    parts = []
    sr = con.table("survey_responses")
    sr = sr.filter(sr.text.notnull() & (sr.responded_at <= t))
    origin = ibis.cases(((sr.survey == "exit") & (sr.question_id == "comment"), ibis.literal("exit_comment")),
                        (sr.question_id == "would_return_if", ibis.literal("would_return_if")),
                        else_=ibis.literal("survey_other"))
    parts.append(sr.select("source", "customer_id", "text", language=sr.language.cast("string"),
                           at=sr.responded_at, origin=origin))
    subs = con.table("subscriptions")
    at = subs.canceled_at.coalesce(subs.ended_at)
    subs = subs.filter(subs.cancel_reason_text.notnull() & at.notnull() & (at <= t))
    parts.append(subs.select("source", "customer_id", text=subs.cancel_reason_text,
                             language=ibis.null("string"), at=at, origin=ibis.literal("cancel_comment")))
    if include_tickets:
        tk = con.table("tickets")
        tk = tk.filter(tk.subject.notnull() & (tk.opened_at <= t))
        parts.append(tk.select("source", "customer_id", text=tk.subject, language=ibis.null("string"),
                               at=tk.opened_at, origin=ibis.literal("ticket")))
    union = parts[0]
    for p in parts[1:]:
        union = union.union(p)
    cust = con.table("customers").select("source", "customer_id", locale="locale")
    joined = union.left_join(cust, ["source", "customer_id"])
    joined = joined.select("source", "customer_id", "text", "at", "origin",
                           language=joined.language.coalesce(joined.locale))
    table = joined.order_by(["at", "source", "customer_id", "origin"]).to_pyarrow()
    churned = churned_customers(con, as_of)
    lost = {(s, c): (m, cur) for s, c, m, cur in zip(*(churned.column(k).to_pylist() for k in
                                                        ("source", "customer_id", "lost_mrr_minor", "currency")))}
    srcs = table.column("source").to_pylist()
    cids = table.column("customer_id").to_pylist()
    values = [lost.get((s, c)) for s, c in zip(srcs, cids)]
    return pa.table({
        "source": table.column("source").cast(pa.string()),
        "customer_id": table.column("customer_id").cast(pa.string()),
        "text": table.column("text").cast(pa.string()),
        "language": table.column("language").cast(pa.string()),
        "lost_mrr_minor": pa.array([v[0] if v else 0 for v in values], pa.int64()),
        "currency": pa.array([v[1] if v else None for v in values], pa.string()),
        "at": _utc_ts(table.column("at")),
        "origin": table.column("origin").cast(pa.string()),
    }, schema=FEEDBACK_SCHEMA)
