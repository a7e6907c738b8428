"""The churn-reason text classifier: character n-grams plus lexicon cues, a linear model, a temperature.

Features: TF-IDF over character n-grams within word boundaries (``char_wb``, 1-4 characters,
sublinear term frequency), which needs no tokeniser for Japanese or Chinese and copes with
typos and inflection; plus the negation-aware cue counts of :mod:`.cues`, scaled by
``cue_weight``. Model: a linear support vector machine (liblinear, one-vs-rest).
Probabilities: a softmax over the SVM margins with one temperature, fitted by minimising the
negative log-likelihood of out-of-fold margins (grouped 5-fold cross-validation on the training
corpus) - temperature scaling, Guo et al. 2017, "On Calibration of Modern Neural Networks",
eq. 9, applied to a linear model.

The model is trained from the shipped corpus the first time it is needed in a process (well
under two seconds) and cached; training is deterministic.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np
from scipy import sparse
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, softmax
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.model_selection import GroupKFold
from sklearn.svm import LinearSVC

from winback.analytics.reasons import UNKNOWN
from winback.insights.reasons.corpus import TEXT_REASONS, parallel_groups, training_rows
from winback.insights.reasons.cues import CueMatcher, cue_matcher
from winback.insights.reasons.language import detect_language
from winback.insights.reasons.text import normalise

#: Answers that state nothing (treated like an empty comment).
NO_ANSWER = frozenset({"n/a", "na", "none", "null", "nil", "no comment", "-", "なし", "없음", "无", "無", "немає"})


@dataclass(frozen=True)
class Classification:
    """The reason one comment states, how sure the model is, and every reason's probability."""

    reason: str
    confidence: float
    scores: dict[str, float] = field(hash=False)
    language: str | None


@dataclass(frozen=True)
class ModelSettings:
    """Hyperparameters, chosen by grouped 5-fold cross-validation on the training corpus only.

    Cross-validated macro-F1 for cue_weight 0 / 0.05 / 0.1 / 0.3 / 0.5 (C=1): 0.76 / 0.82 / 0.86 /
    0.85 / 0.84; C 0.3 / 0.5 / 1 at cue_weight 0.1: 0.863 / 0.864 / 0.860; n-grams up to 5
    characters did not help.
    """

    ngram_range: tuple[int, int] = (1, 4)
    cue_weight: float = 0.1
    svm_c: float = 0.5
    folds: int = 5


@dataclass(frozen=True)
class ReasonModel:
    """A trained model; :meth:`probabilities` maps normalised texts to calibrated reason probabilities."""

    vectorizer: TfidfVectorizer
    cues: CueMatcher
    svm: LinearSVC
    settings: ModelSettings
    temperature: float
    class_order: np.ndarray  # column of svm.decision_function for each reason in TEXT_REASONS

    def features(self, texts: Sequence[str]) -> sparse.csr_matrix:
        return _features(self.vectorizer, self.cues, self.settings, texts)

    def margins(self, texts: Sequence[str]) -> np.ndarray:
        """SVM margins, one column per reason in :data:`TEXT_REASONS` order."""
        return self.svm.decision_function(self.features(texts))[:, self.class_order]

    def probabilities(self, texts: Sequence[str]) -> np.ndarray:
        """Calibrated probabilities, one row per text and one column per reason in :data:`TEXT_REASONS` order."""
        if not len(texts):
            return np.zeros((0, len(TEXT_REASONS)))
        return softmax(self.margins(texts) / self.temperature, axis=1)


def _features(vectorizer: TfidfVectorizer, cues: CueMatcher, settings: ModelSettings,
              texts: Sequence[str]) -> sparse.csr_matrix:
    ngrams = vectorizer.transform(texts)
    return sparse.hstack([ngrams, cues.features(texts) * settings.cue_weight], format="csr")


def fit_temperature(margins: np.ndarray, labels: np.ndarray) -> float:
    """The temperature T minimising the mean negative log-likelihood of softmax(margins / T) (Guo et al. 2017)."""

    def nll(log_t: float) -> float:
        return -log_softmax(margins / np.exp(log_t), axis=1)[np.arange(len(labels)), labels].mean()

    result = minimize_scalar(nll, bounds=(np.log(0.01), np.log(100.0)), method="bounded",
                             options={"xatol": 1e-4})
    return float(np.exp(result.x))


def train_model(rows: Sequence[Mapping], settings: ModelSettings = ModelSettings()) -> ReasonModel:
    """Fit vectoriser, SVM and temperature on labelled rows ``{"text", "reason", "lang"}``."""
    texts = [normalise(row["text"]) for row in rows]
    labels = np.array([TEXT_REASONS.index(row["reason"]) for row in rows])
    vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=settings.ngram_range, sublinear_tf=True,
                                 dtype=np.float64)
    vectorizer.fit(texts)
    cues = cue_matcher(TEXT_REASONS)
    features = _features(vectorizer, cues, settings, texts)

    # Out-of-fold margins for the temperature; translations of a sentence stay in one fold.
    out_of_fold = np.zeros((len(texts), len(TEXT_REASONS)))
    for train_index, test_index in GroupKFold(n_splits=settings.folds).split(texts, labels, parallel_groups(rows)):
        fold_svm = _svm(settings).fit(features[train_index], labels[train_index])
        out_of_fold[np.ix_(test_index, fold_svm.classes_)] = fold_svm.decision_function(features[test_index])
    temperature = fit_temperature(out_of_fold, labels)

    svm = _svm(settings).fit(features, labels)
    class_order = np.array([list(svm.classes_).index(i) for i in range(len(TEXT_REASONS))])
    return ReasonModel(vectorizer, cues, svm, settings, temperature, class_order)


def _svm(settings: ModelSettings) -> LinearSVC:
    return LinearSVC(C=settings.svm_c, random_state=0, max_iter=5000)


@functools.lru_cache(maxsize=1)
def reason_model() -> ReasonModel:
    """The model trained on the shipped corpus, once per process."""
    return train_model(training_rows())


def classify_texts(texts: Sequence[str | None], languages: Sequence[str | None] | None = None) -> list[Classification]:
    """The stated churn reason of each text, vectorised: identical texts are classified once.

    Empty, whitespace-only, letter-free and "n/a"-style texts (and None or other non-strings) get
    reason ``unknown`` with confidence 0. Texts are truncated to :data:`.text.MAX_CHARS` characters. ``languages``, when
    given, holds a stated language per text (reported instead of the detected one) or None
    (detect it).
    """
    if languages is not None and len(languages) != len(texts):
        raise ValueError(f"languages has {len(languages)} entries for {len(texts)} texts")
    normalised = [normalise(text) if isinstance(text, str) else "" for text in texts]
    index_of: dict[str, int] = {}
    for text in normalised:
        if text not in index_of and _states_something(text):
            index_of[text] = len(index_of)
    unique = list(index_of)
    probabilities = reason_model().probabilities(unique)
    detected = [detect_language(text) for text in unique]
    results = []
    zero_scores = {reason: 0.0 for reason in TEXT_REASONS}
    for position, text in enumerate(normalised):
        row = index_of.get(text)
        if languages is not None and languages[position] is not None:
            language = languages[position]
        else:
            language = detect_language(text) if row is None else detected[row]
        if row is None:
            results.append(Classification(UNKNOWN, 0.0, dict(zero_scores), language))
            continue
        p = probabilities[row]
        best = int(np.argmax(p))
        results.append(Classification(TEXT_REASONS[best], float(p[best]),
                                      {reason: float(p[i]) for i, reason in enumerate(TEXT_REASONS)}, language))
    return results


def _states_something(normalised_text: str) -> bool:
    return bool(normalised_text) and normalised_text not in NO_ANSWER and any(c.isalpha() for c in normalised_text)
