"""``winback reasons classify`` and ``winback reasons evaluate``: churn reasons in free-text comments."""

from __future__ import annotations

import json
import sys
import unicodedata
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from winback.cli.common import JsonOpt, emit_json, err, handle_errors, out, progress_bar
from winback.kit.errors import WinbackError

reasons_app = typer.Typer(help="Churn reasons stated in free-text comments (en, ja, ko, uk, zh-Hans, zh-Hant).",
                          no_args_is_help=True)

CommentFileArg = Annotated[str, typer.Argument(metavar="FILE.jsonl", show_default=False,
                                               help="JSONL file, one comment per line; - reads standard input.")]
_EXCERPT_CHARS = 60


@reasons_app.command("classify")
@handle_errors
def classify_cmd(file: CommentFileArg, json_output: JsonOpt = False) -> None:
    """Classify comments: each line {"id": ..., "text": ..., "lang"?: ...} gets a reason and a confidence."""
    from winback.insights.reasons import classify_texts
    from winback.insights.reasons.inputs import read_comment_lines

    data, source = _read_input(file)
    comments = read_comment_lines(data, source)
    with progress_bar(not json_output and err.is_terminal) as bar:
        bar.add_task(f"classifying {len(comments):,} comments", total=None)
        results = classify_texts([c.text for c in comments], [c.lang for c in comments])
    if json_output:
        lines = [json.dumps({"id": c.id, "reason": r.reason, "confidence": round(r.confidence, 4),
                             "language": r.language}, ensure_ascii=False) for c, r in zip(comments, results)]
        sys.stdout.write("\n".join(lines) + "\n")
        sys.stdout.flush()
        return
    grid = Table(title=f"Churn reasons in {source} ({len(comments):,} comments)", title_justify="left")
    for column, justify in (("id", "left"), ("language", "left"), ("reason", "left"), ("confidence", "right"),
                            ("comment", "left")):
        grid.add_column(column, justify=justify, overflow="fold" if column == "comment" else "ellipsis")
    for comment, result in zip(comments, results):
        grid.add_row(Text(_printable(str(comment.id))), result.language or "-", result.reason,
                     f"{result.confidence:.2f}", Text(_excerpt(comment.text)))
    out.print(grid)
    counts: dict[str, int] = {}
    for result in results:
        counts[result.reason] = counts.get(result.reason, 0) + 1
    out.print("reasons: " + ", ".join(f"{reason} {n:,}" for reason, n in sorted(counts.items(), key=lambda kv: -kv[1])),
              markup=False, highlight=False)


@reasons_app.command("evaluate")
@handle_errors
def evaluate_cmd(file: CommentFileArg, json_output: JsonOpt = False) -> None:
    """Score the classifier on labelled comments: each line {"text": ..., "reason": ..., "lang"?: ...}."""
    from winback.insights.reasons import evaluate
    from winback.insights.reasons.inputs import read_comment_lines

    data, source = _read_input(file)
    comments = read_comment_lines(data, source, labelled=True)
    result = evaluate([{"text": c.text, "reason": c.reason, "lang": c.lang} for c in comments])
    if json_output:
        emit_json({"ok": True, "file": source, **result})
        return
    out.print(f"[bold]{source}[/]: {result['n']:,} comments, accuracy {result['accuracy']:.3f}, "
              f"macro-F1 {result['macro_f1']:.3f}, expected calibration error {result['ece']:.3f} "
              f"(mean confidence {result['mean_confidence']:.3f})")
    languages = Table(title="By language", title_justify="left")
    for column in ("language", "n", "accuracy", "macro-F1"):
        languages.add_column(column, justify="left" if column == "language" else "right")
    for language, figures in result["per_language"].items():
        languages.add_row(Text(language), f"{figures['n']:,}", f"{figures['accuracy']:.3f}",
                          f"{figures['macro_f1']:.3f}")
    out.print(languages)
    reasons = Table(title="By reason", title_justify="left")
    for column in ("reason", "support", "precision", "recall", "F1"):
        reasons.add_column(column, justify="left" if column == "reason" else "right")
    for reason, figures in result["per_reason"].items():
        reasons.add_row(Text(reason), f"{figures['support']:,}", f"{figures['precision']:.3f}",
                        f"{figures['recall']:.3f}", f"{figures['f1']:.3f}")
    out.print(reasons)
    labels = result["confusion"]["labels"]
    confusion = Table(title="Confusion (rows: stated reason, columns: predicted)", title_justify="left")
    confusion.add_column("")
    for label in labels:
        confusion.add_column(label, justify="right")
    for label, row in zip(labels, result["confusion"]["matrix"]):
        confusion.add_row(Text(label), *(str(n) for n in row))
    out.print(confusion)


def _read_input(file: str) -> tuple[bytes, str]:
    """The bytes of ``file`` (``-`` = standard input) and the name to use in messages."""
    if file == "-":
        stream = getattr(sys.stdin, "buffer", None)
        data = stream.read() if stream is not None else sys.stdin.read().encode("utf-8", "surrogateescape")
        return data, "<stdin>"
    path = Path(file)
    if not path.exists():
        raise WinbackError(f"{file}: no such file")
    if not path.is_file():
        raise WinbackError(f"{file}: not a file")
    try:
        return path.read_bytes(), file
    except OSError as exc:
        raise WinbackError(f"{file}: cannot read ({exc.strerror or exc})") from None


def _printable(text: str) -> str:
    """``text`` with control characters (terminal escapes, NUL ...) shown as U+FFFD."""
    return "".join("\ufffd" if unicodedata.category(ch) in ("Cc", "Cs") and ch not in " " else ch
                   for ch in text)


def _excerpt(text: str) -> str:
    flat = " ".join(text[: _EXCERPT_CHARS * 4].split())
    flat = flat if len(flat) <= _EXCERPT_CHARS else flat[: _EXCERPT_CHARS - 1] + "…"
    return _printable(flat)
