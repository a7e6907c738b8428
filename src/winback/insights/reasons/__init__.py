"""Why customers say they left: a multilingual churn-reason classifier for free-text comments.

``classify_texts`` maps exit-survey and cancellation comments in English, Japanese, Korean,
Ukrainian and Chinese (simplified and traditional) to the canonical text reasons of
:mod:`winback.analytics.reasons` (price, missing_feature, usability, support, competitor, other),
with a calibrated confidence; ``detect_language`` names a comment's language from its script;
``evaluate`` scores the classifier on labelled rows.
"""

from winback.insights.reasons.classifier import Classification, classify_texts
from winback.insights.reasons.corpus import TEXT_REASONS
from winback.insights.reasons.evaluation import evaluate
from winback.insights.reasons.language import detect_language

__all__ = ["Classification", "TEXT_REASONS", "classify_texts", "detect_language", "evaluate"]
