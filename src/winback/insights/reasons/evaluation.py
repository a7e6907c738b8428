"""Scores for the reason classifier on labelled rows: accuracy, macro-F1, confusion, calibration."""

from __future__ import annotations

from typing import Iterable, Mapping

import numpy as np
from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support

from winback.analytics import calibration
from winback.analytics.reasons import UNKNOWN
from winback.insights.reasons.classifier import classify_texts
from winback.insights.reasons.corpus import TEXT_REASONS
from winback.insights.reasons.language import detect_language

CALIBRATION_BINS = 10


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int = CALIBRATION_BINS
                               ) -> tuple[float, list[dict]]:
    """ECE over equal-width confidence bins: sum over bins of (share of rows) x |accuracy - mean confidence|.

    Naeini, Cooper and Hauskrecht 2015, "Obtaining Well Calibrated Probabilities Using Bayesian
    Binning"; Guo et al. 2017, eq. 3. Returns the ECE and one entry per non-empty bin.
    """
    confidence = np.asarray(confidence, dtype=float)
    correct = np.asarray(correct, dtype=float)
    if not len(confidence):
        return 0.0, []
    bin_index = np.minimum((confidence * bins).astype(int), bins - 1)
    table = []
    for b in range(bins):
        in_bin = bin_index == b
        n = int(in_bin.sum())
        if not n:
            continue
        mean_confidence, accuracy = float(confidence[in_bin].mean()), float(correct[in_bin].mean())
        table.append({"low": b / bins, "high": (b + 1) / bins, "n": n,
                      "mean_confidence": round(mean_confidence, 4), "accuracy": round(accuracy, 4)})
    return calibration.expected_calibration_error(correct, confidence, bins), table


def evaluate(rows: Iterable[Mapping]) -> dict:
    """Classify ``rows`` (``{"text", "reason", "lang"?}``) and score the predictions against ``reason``.

    Returns ``n``, ``accuracy``, ``macro_f1`` (sklearn ``f1_score(average="macro")``),
    ``per_language`` (n, accuracy, macro-F1 per language; ``lang`` or, when absent, the detected
    language), ``per_reason`` (precision, recall, F1, support), ``confusion`` (labels and matrix,
    rows = truth), ``ece`` (expected calibration error over 10 bins) and ``calibration`` (the bins).
    """
    rows = list(rows)
    if not rows:
        raise ValueError("no labelled rows to evaluate")
    texts = [row["text"] for row in rows]
    truth = np.array([str(row["reason"]) for row in rows])
    predictions = classify_texts(texts)
    predicted = np.array([p.reason for p in predictions])
    confidence = np.array([p.confidence for p in predictions])
    languages = np.array([str(row.get("lang") or detect_language(row["text"]) or "unknown") for row in rows])
    correct = predicted == truth

    labels = list(TEXT_REASONS) + ([UNKNOWN] if UNKNOWN in set(truth) | set(predicted) else [])
    labels += sorted(set(truth) - set(labels))
    precision, recall, f1, support = precision_recall_fscore_support(truth, predicted, labels=labels,
                                                                     zero_division=0)
    per_language = {}
    for language in sorted(set(languages.tolist())):
        mask = languages == language
        per_language[str(language)] = {"n": int(mask.sum()), "accuracy": _round(correct[mask].mean()),
                                  "macro_f1": _round(f1_score(truth[mask], predicted[mask], average="macro",
                                                              zero_division=0))}
    ece, calibration = expected_calibration_error(confidence, correct)
    return {
        "n": len(rows),
        "accuracy": _round(correct.mean()),
        "macro_f1": _round(f1_score(truth, predicted, average="macro", zero_division=0)),
        "per_language": per_language,
        "per_reason": {label: {"precision": _round(precision[i]), "recall": _round(recall[i]), "f1": _round(f1[i]),
                               "support": int(support[i])} for i, label in enumerate(labels)},
        "confusion": {"labels": labels,
                      "matrix": confusion_matrix(truth, predicted, labels=labels).tolist()},
        "ece": _round(ece),
        "mean_confidence": _round(confidence.mean()),
        "calibration": calibration,
    }


def _round(value) -> float:
    return round(float(value), 4)
