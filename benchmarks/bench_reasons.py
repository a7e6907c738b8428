"""Benchmark the churn-reason classifier: accuracy on two held-out sets, calibration, speed.

    python benchmarks/bench_reasons.py [--texts 100000] [--seed 0]

Accuracy sets (neither is in the training corpus, src/winback/insights/reasons/data/train.jsonl):
  hand-written  tests/data/reasons_eval.jsonl, 14 comments per reason and language;
  generator     the synthetic-data generator's sentences (winback.synth.texts), expanded over its
                features and competitors, one row per distinct sentence: SaaS and shop.
For each: macro-F1 overall, per language and per reason, accuracy and the expected calibration
error over 10 bins.

Speed: time to train the model from the corpus (once per process), then classify_texts on
--texts comments drawn from the test sentences - all distinct (a suffix makes each unique), and
with repeats as real survey exports have them (identical texts are classified once).
Figures are printed, not asserted.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import time
from pathlib import Path

from winback.insights.reasons import TEXT_REASONS, classify_texts, evaluate
from winback.insights.reasons.classifier import reason_model, train_model
from winback.insights.reasons.corpus import generator_rows, parse_labelled_lines, training_rows

EVAL_FILE = Path(__file__).resolve().parents[1] / "tests" / "data" / "reasons_eval.jsonl"


def print_report(name: str, report: dict) -> None:
    print(f"\n{name}: {report['n']:,} comments  macro-F1 {report['macro_f1']:.3f}  accuracy {report['accuracy']:.3f}  "
          f"ECE {report['ece']:.3f}  mean confidence {report['mean_confidence']:.3f}")
    print("  per language  " + "  ".join(f"{lang} {f['macro_f1']:.3f}" for lang, f in report["per_language"].items()))
    print("  per reason    " + "  ".join(f"{reason} {report['per_reason'][reason]['f1']:.3f}"
                                         for reason in TEXT_REASONS))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs")

    started = time.perf_counter()
    model = reason_model()
    first_train = time.perf_counter() - started
    started = time.perf_counter()
    train_model(training_rows())
    retrain = time.perf_counter() - started
    print(f"training corpus: {len(training_rows()):,} comments; first training {first_train:.2f} s "
          f"(includes reading the corpus, compiling the lexicon), retraining {retrain:.2f} s; "
          f"temperature {model.temperature:.3f}")

    eval_rows = parse_labelled_lines(EVAL_FILE.read_text("utf-8").splitlines(), EVAL_FILE.name)
    print_report("hand-written eval set", evaluate(eval_rows))
    saas, shop = generator_rows("saas"), generator_rows("shop")
    print_report("generator texts, SaaS", evaluate(saas))
    print_report("generator texts, shop", evaluate(shop))

    rng = random.Random(args.seed)
    pool = [row["text"] for row in eval_rows + saas + shop]
    distinct = [f"{rng.choice(pool)} (#{i})" for i in range(args.texts)]
    repeated = [rng.choice(pool) for _ in range(args.texts)]
    print()
    for label, texts in (("distinct comments", distinct), ("comments with repeats", repeated)):
        started = time.perf_counter()
        results = classify_texts(texts)
        seconds = time.perf_counter() - started
        assert len(results) == len(texts)
        print(f"classify_texts, {len(texts):,} {label}: {seconds:.2f} s = {len(texts) / seconds:,.0f} texts/s")


if __name__ == "__main__":
    main()
