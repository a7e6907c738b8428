"""The multilingual churn-reason classifier: accuracy on two held-out sets, calibration, language
detection, determinism, hostile input through the CLI.

Test sets:
- ``tests/data/reasons_eval.jsonl``: 504 hand-written comments (14 per reason and language),
  written apart from the training corpus; checked below to share no sentence with it.
- the synthetic-data generator's own sentences (``winback.synth.texts``), written by someone else
  for another purpose and kept out of the training corpus.

Thresholds (figures measured when written, see benchmarks/bench_reasons.py): hand-written set
macro-F1 0.90 overall, 0.83-0.94 per language -> asserted >= 0.85 overall (the target for a
usable reason report) and >= 0.78 per language (every language must stay usable; with 84 rows a
language moves about 1.2 points per error, so this allows a few errors of drift, not a broken
language). Generator texts (SaaS) 0.87 overall, >= 0.83 per language -> asserted >= 0.82 and
>= 0.75; shop texts, a domain the corpus covers thinly, 0.79 -> asserted >= 0.70. Expected
calibration error 0.03 on both SaaS sets -> asserted < 0.06.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from winback.analytics.reasons import UNKNOWN
from winback.cli.reasons_cmd import reasons_app
from winback.insights.reasons import TEXT_REASONS, Classification, classify_texts, detect_language, evaluate
from winback.insights.reasons.classifier import reason_model, train_model
from winback.insights.reasons.corpus import generator_rows, parse_labelled_lines, training_rows
from winback.insights.reasons.cues import cue_matcher
from winback.insights.reasons.evaluation import expected_calibration_error
from winback.insights.reasons.language import LANGUAGES, SIMPLIFIED_ONLY, TRADITIONAL_ONLY
from winback.insights.reasons.lexicon import CUES
from winback.insights.reasons.text import MAX_CHARS, normalise

EVAL_FILE = Path(__file__).resolve().parents[1] / "data" / "reasons_eval.jsonl"


@pytest.fixture(scope="module")
def eval_rows() -> list[dict]:
    return parse_labelled_lines(EVAL_FILE.read_text("utf-8").splitlines(), EVAL_FILE.name)


@pytest.fixture(scope="module")
def eval_report(eval_rows) -> dict:
    return evaluate(eval_rows)


@pytest.fixture(scope="module")
def saas_report() -> dict:
    return evaluate(generator_rows("saas"))


# --- the data sets ---------------------------------------------------------------------------------


def test_eval_set_covers_every_reason_and_language(eval_rows):
    assert len(eval_rows) >= 430
    counts: dict[tuple[str, str], int] = {}
    for row in eval_rows:
        counts[(row["lang"], row["reason"])] = counts.get((row["lang"], row["reason"]), 0) + 1
    assert {(lang, reason) for lang in LANGUAGES for reason in TEXT_REASONS} == set(counts)
    assert min(counts.values()) >= 12
    assert len({row["id"] for row in eval_rows}) == len(eval_rows)


def test_training_corpus_covers_every_reason_and_language():
    counts: dict[tuple[str, str], int] = {}
    for row in training_rows():
        counts[(row["lang"], row["reason"])] = counts.get((row["lang"], row["reason"]), 0) + 1
    assert {(lang, reason) for lang in LANGUAGES for reason in TEXT_REASONS} == set(counts)
    assert min(counts.values()) >= 25


def test_no_eval_text_in_training_corpus_or_generator_texts(eval_rows):
    training = {normalise(row["text"]) for row in training_rows()}
    generated = {normalise(row["text"]) for kind in ("saas", "shop") for row in generator_rows(kind)}
    evaluated = [normalise(row["text"]) for row in eval_rows]
    assert len(set(evaluated)) == len(evaluated)
    assert not set(evaluated) & training
    assert not set(evaluated) & generated
    assert not training & generated  # the generator's sentences would leak into its own test set


def test_eval_texts_are_not_near_copies_of_training_texts(eval_rows):
    """No eval sentence shares most of its character trigrams with a training or generator sentence."""
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.preprocessing import normalize

    others = [normalise(r["text"]) for r in training_rows()] + \
        [normalise(r["text"]) for kind in ("saas", "shop") for r in generator_rows(kind)]
    evaluated = [normalise(r["text"]) for r in eval_rows]
    trigrams = CountVectorizer(analyzer="char", ngram_range=(3, 3)).fit(others + evaluated)
    similarity = normalize(trigrams.transform(evaluated)) @ normalize(trigrams.transform(others)).T
    assert similarity.max() < 0.8  # measured: 0.69 at most


# --- accuracy ------------------------------------------------------------------------------------


def test_macro_f1_on_hand_written_eval_set(eval_report):
    assert eval_report["n"] >= 430
    assert eval_report["macro_f1"] >= 0.85, eval_report["per_language"]
    for language in LANGUAGES:
        assert eval_report["per_language"][language]["macro_f1"] >= 0.78, (language, eval_report["per_language"])
    for reason in TEXT_REASONS:
        assert eval_report["per_reason"][reason]["f1"] >= 0.75, (reason, eval_report["per_reason"])


def test_macro_f1_on_generator_texts(saas_report):
    assert saas_report["macro_f1"] >= 0.82
    for language in LANGUAGES:
        assert saas_report["per_language"][language]["macro_f1"] >= 0.75, (language, saas_report["per_language"])
    shop = evaluate(generator_rows("shop"))
    assert shop["macro_f1"] >= 0.70


def test_evaluate_report_shape(eval_report):
    labels = eval_report["confusion"]["labels"]
    assert labels[:len(TEXT_REASONS)] == list(TEXT_REASONS)
    matrix = np.array(eval_report["confusion"]["matrix"])
    assert matrix.sum() == eval_report["n"]
    assert np.trace(matrix) / matrix.sum() == pytest.approx(eval_report["accuracy"], abs=1e-4)
    assert sum(b["n"] for b in eval_report["calibration"]) == eval_report["n"]
    json.dumps(eval_report)  # plain JSON types only


@pytest.mark.parametrize("text, reason", [
    ("It's not about the price at all. Your support team never answered our tickets.", "support"),
    ("Price was fine but the UI is confusing and slow.", "usability"),
    ("料金には満足していますが、サポートから返信がありません。", "support"),
    ("가격 문제는 아니고 화면이 너무 복잡해서요.", "usability"),
    ("Справа не в ціні, нам бракує інтеграції з Jira.", "missing_feature"),
    ("不是因为价格，是客服一直不回复。", "support"),
    ("價格沒問題，只是我們改用別家的工具了。", "competitor"),
])
def test_negated_reason_does_not_win(text, reason):
    assert classify_texts([text])[0].reason == reason


def test_cue_negation_scopes():
    matcher = cue_matcher(TEXT_REASONS)
    found = matcher.matches(normalise("Not the price - support never replied."))
    assert ("price", "price", True) in found and ("support", "support", False) in found
    assert matcher.matches(normalise("Feedback: the coffee was cold")) == []  # "fee_" is a whole word
    assert matcher.matches(normalise("It doesn't support SSO"))[0][1] == "missing_feature"
    assert [n for _, r, n in matcher.matches(normalise("가격은 괜찮은데")) if r == "price"] == [True]
    features = matcher.features([normalise("Not the price. Too expensive!"), ""])
    assert features.shape == (2, 2 * len(TEXT_REASONS)) and features[1].nnz == 0


def test_lexicon_is_consistent():
    reason_of: dict[str, str] = {}
    for reason, by_language in CUES.items():
        assert reason in TEXT_REASONS and set(by_language) == set(LANGUAGES)
        for cues in by_language.values():
            for cue in cues:
                assert cue == normalise(cue.rstrip("_")) + ("_" if cue.endswith("_") else ""), cue
                assert reason_of.setdefault(cue.rstrip("_"), reason) == reason, f"{cue!r} in two reasons"


# --- calibration, edge cases, determinism, speed -----------------------------------------------------


def test_calibration(eval_report, saas_report):
    assert eval_report["ece"] < 0.06
    assert saas_report["ece"] < 0.06
    assert 0 < reason_model().temperature < 1  # margins are sharpened, not flattened


def test_expected_calibration_error_by_hand():
    ece, bins = expected_calibration_error(np.array([0.95, 0.95, 0.55, 0.55]), np.array([1, 1, 1, 0]))
    assert ece == pytest.approx(0.5 * 0.05 + 0.5 * 0.05)
    assert [(b["low"], b["n"]) for b in bins] == [(0.5, 2), (0.9, 2)]


def test_classification_fields():
    result = classify_texts(["The price went up 40% and we can't afford it."])[0]
    assert isinstance(result, Classification)
    assert result.reason == "price" and result.language == "en"
    assert set(result.scores) == set(TEXT_REASONS)
    assert sum(result.scores.values()) == pytest.approx(1.0)
    assert result.confidence == max(result.scores.values())
    with pytest.raises(AttributeError):
        result.reason = "other"  # frozen


@pytest.mark.parametrize("text", [None, "", "   ", "\n\t ", "n/a", "N/A", "!!!", "123", "---", "なし", "\x00\x01"])
def test_empty_text_is_unknown(text):
    result = classify_texts([text])[0]
    assert result.reason == UNKNOWN and result.confidence == 0.0
    assert set(result.scores.values()) == {0.0}


def test_very_long_text_is_truncated_and_classified():
    text = "The price is far too high for our small team. " * 50_000  # 2.3 million characters
    assert len(normalise(text)) == MAX_CHARS
    assert classify_texts([text])[0].reason == "price"


def test_classification_is_deterministic(eval_rows):
    texts = [row["text"] for row in eval_rows]
    first = classify_texts(texts)
    again = classify_texts(list(reversed(texts)))[::-1]  # order and batch do not matter
    assert first == again
    retrained = train_model(training_rows())
    sample = [normalise(t) for t in texts[:50]]
    np.testing.assert_array_equal(retrained.probabilities(sample), reason_model().probabilities(sample))
    assert retrained.temperature == reason_model().temperature


def test_stated_language_is_reported():
    results = classify_texts(["too expensive", "高すぎる", "too expensive"], ["en-GB", None, None])
    assert [r.language for r in results] == ["en-GB", "ja", "en"]
    with pytest.raises(ValueError):
        classify_texts(["a", "b"], ["en"])


def test_twenty_thousand_texts(eval_rows):
    rng = random.Random(7)
    pool = [row["text"] for row in eval_rows] + [row["text"] for row in generator_rows("saas")]
    texts = [f"{rng.choice(pool)} #{i}" if i % 2 else rng.choice(pool) for i in range(20_000)]
    results = classify_texts(texts)
    assert len(results) == 20_000
    assert {r.reason for r in results} <= set(TEXT_REASONS)


# --- language detection ---------------------------------------------------------------------------


@pytest.mark.parametrize("text, language", [
    ("Way too expensive for us.", "en"),
    ("料金が高すぎます", "ja"),
    ("Salesforce連携がないので解約します", "ja"),
    ("カスタマーサポート", "ja"),
    ("가격이 너무 비싸요", "ko"),
    ("Salesforce 연동이 없어요", "ko"),
    ("Занадто дорого", "uk"),
    ("Переносимо все в Google Workspace.", "uk"),
    ("太贵了，我们用不起", "zh-Hans"),
    ("太貴了，我們用不起", "zh-Hant"),
    ("沒有Salesforce整合", "zh-Hant"),
    ("家裡有事", "zh-Hant"),
    ("１２３!!", None),
    ("", None),
    (None, None),
])
def test_detect_language(text, language):
    assert detect_language(text) == language


def test_detect_language_on_labelled_sets(eval_rows):
    rows = eval_rows + list(training_rows()) + generator_rows("saas")
    wrong = [row for row in rows if detect_language(row["text"]) != row["lang"]]
    assert len(wrong) / len(rows) < 0.01  # the misses are Han-only texts using no script-specific character
    assert {row["lang"] for row in wrong} <= {"zh-Hant", "zh-Hans"}


def test_simplified_and_traditional_character_lists_are_disjoint():
    assert SIMPLIFIED_ONLY and TRADITIONAL_ONLY and not SIMPLIFIED_ONLY & TRADITIONAL_ONLY


# --- the CLI -------------------------------------------------------------------------------------

runner = CliRunner()


@pytest.fixture(scope="module")
def cli() -> typer.Typer:
    app = typer.Typer()
    app.add_typer(reasons_app, name="reasons")
    return app


def _write(path: Path, content: str | bytes) -> str:
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return str(path)


def test_cli_classify_json(cli, tmp_path):
    file = _write(tmp_path / "comments.jsonl", "\n".join([
        json.dumps({"id": 1, "text": "Too expensive after the price increase."}),
        json.dumps({"id": "c-2", "text": "サポートから何日も返信がありません。", "lang": "ja"}),
        "",
        json.dumps({"id": None, "text": ""}),
        json.dumps({"text": "我们换成了别家的产品。"}),
    ]) + "\n")
    result = runner.invoke(cli, ["reasons", "classify", file, "--json"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["id"] for line in lines] == [1, "c-2", None, 5]  # id defaults to the line number
    assert [line["reason"] for line in lines] == ["price", "support", UNKNOWN, "competitor"]
    assert [line["language"] for line in lines] == ["en", "ja", None, "zh-Hans"]
    assert all(0.0 <= line["confidence"] <= 1.0 for line in lines)
    assert set(lines[0]) == {"id", "reason", "confidence", "language"}


def test_cli_classify_table_and_stdin(cli):
    stdin = json.dumps({"id": "x1", "text": "[bold]The interface is confusing[/bold]"}) + "\n"
    result = runner.invoke(cli, ["reasons", "classify", "-"], input=stdin)
    assert result.exit_code == 0, result.output
    assert "usability" in result.stdout and "x1" in result.stdout
    assert "[bold]The interface" in result.stdout  # user text is not read as Rich markup
    result = runner.invoke(cli, ["reasons", "classify", "-", "--json"], input=stdin)
    assert json.loads(result.stdout)["reason"] == "usability"


@pytest.mark.parametrize("content, problem", [
    ('{"id": 1, "text": "fine"}\n{"id": 2, "text": "oops"\n', "line 2: invalid JSON"),
    ('{"id": 1, "text": "fine"}\n[1, 2, 3]\n', "line 2: expected a JSON object, got an array"),
    ('"just a string"\n', "line 1: expected a JSON object, got a string"),
    ('{"id": 1, "text": "fine"}\n\n{"id": 3}\n', 'line 3: missing "text"'),
    ('{"id": 1, "text": 42}\n', 'line 1: "text" must be a string, got a number'),
    ('{"id": 1, "text": null}\n', 'line 1: "text" must be a string, got null'),
    ('{"id": {"a": 1}, "text": "x"}\n', 'line 1: "id" must be a string, number, boolean or null'),
    ('{"id": "\\ud800", "text": "x"}\n', 'line 1: "id" contains an invalid Unicode escape'),
    ('{"id": 1, "text": "x", "lang": 5}\n', 'line 1: "lang" must be a language tag'),
    ("", "empty file"),
    ("\n  \n\n", "empty file"),
    (b'{"id": 1, "text": "ok"}\n\xff\xfe\x00garbage\x9c\n', "line 2: not valid UTF-8"),
    ('{"id": 1, "text": "x"}\nnot json\n{"id": 3, "text": 7}\n', "(and 1 more problem)"),
])
def test_cli_rejects_bad_input_with_one_line_and_no_output(cli, tmp_path, content, problem):
    file = _write(tmp_path / "bad.jsonl", content)
    result = runner.invoke(cli, ["reasons", "classify", file])
    assert result.exit_code == 2, result.output
    assert result.stdout == ""  # nothing partial
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: {file}") and problem in lines[0], lines
    result = runner.invoke(cli, ["reasons", "classify", file, "--json"])
    assert result.exit_code == 2
    payload = json.loads(result.stdout)
    assert payload["ok"] is False and problem in payload["error"]


def test_cli_binary_garbage_file(cli, tmp_path):
    garbage = bytes(random.Random(3).randrange(256) for _ in range(4096))
    result = runner.invoke(cli, ["reasons", "classify", _write(tmp_path / "garbage.jsonl", garbage)])
    assert result.exit_code == 2 and result.stdout == ""
    assert "garbage.jsonl, line" in result.stderr


def test_cli_missing_file(cli, tmp_path):
    result = runner.invoke(cli, ["reasons", "classify", str(tmp_path / "nope.jsonl")])
    assert result.exit_code == 1 and "no such file" in result.stderr
    result = runner.invoke(cli, ["reasons", "classify", str(tmp_path)])
    assert result.exit_code == 1 and "not a file" in result.stderr


def test_cli_huge_text(cli, tmp_path):
    huge = "Support never answered. " * 400_000  # about 10 MB on one line
    file = _write(tmp_path / "huge.jsonl", json.dumps({"id": "big", "text": huge}) + "\n"
                  + json.dumps({"id": "ctrl", "text": "\x1b[31mred\x1b[0m \x00 price too high"}) + "\n")
    result = runner.invoke(cli, ["reasons", "classify", file, "--json"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["id"] for line in lines] == ["big", "ctrl"] and lines[0]["reason"] == "support"
    result = runner.invoke(cli, ["reasons", "classify", file])
    assert result.exit_code == 0 and "\x1b[31m" not in result.stdout


def test_cli_evaluate(cli, tmp_path, eval_report):
    result = runner.invoke(cli, ["reasons", "evaluate", str(EVAL_FILE), "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["ok"] is True and payload["macro_f1"] == eval_report["macro_f1"]
    assert set(payload["per_language"]) == set(LANGUAGES)
    result = runner.invoke(cli, ["reasons", "evaluate", str(EVAL_FILE)])
    assert result.exit_code == 0 and "macro-F1" in result.stdout and "zh-Hant" in result.stdout
    bad = _write(tmp_path / "labels.jsonl", '{"text": "too expensive", "reason": "money"}\n')
    result = runner.invoke(cli, ["reasons", "evaluate", bad])
    assert result.exit_code == 2 and "line 1: \"reason\" 'money'" in result.stderr

