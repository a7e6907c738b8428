"""Shared CLI options, output rendering and error handling."""

from __future__ import annotations

import functools
import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any, Callable

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

from winback.kit.errors import ValidationFailed, WinbackError

WorkspaceOpt = Annotated[Path, typer.Option("--workspace", "-w", help="Workspace folder (default: current folder).",
                                            envvar="WINBACK_WORKSPACE", show_default=False)]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


def emit_json(payload: Any) -> None:
    sys.stdout.write(json.dumps(payload, ensure_ascii=False, default=str, indent=2) + "\n")
    sys.stdout.flush()


def handle_errors(fn: Callable) -> Callable:
    """Turn a :class:`WinbackError` into a one-line reason and a non-zero exit (JSON with ``--json``)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        as_json = bool(kwargs.get("json_output"))
        try:
            return fn(*args, **kwargs)
        except ValidationFailed as exc:
            if as_json:
                emit_json({"ok": False, "error": str(exc), "error_count": exc.total,
                           "errors": [e.as_dict() for e in exc.errors]})
            else:
                for e in exc.errors:
                    err.print(f"  {e}", markup=False, highlight=False)
                if exc.total > len(exc.errors):
                    err.print(f"  ... {exc.total - len(exc.errors)} more not shown", markup=False)
                err.print(f"error: {exc}", markup=False, highlight=False)
            raise typer.Exit(2) from None
        except WinbackError as exc:
            if as_json:
                emit_json({"ok": False, "error": str(exc)})
            else:
                err.print(f"error: {exc}", markup=False, highlight=False)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            err.print("error: interrupted", markup=False)
            raise typer.Exit(130) from None
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except Exception as exc:  # a bug: still one line, with the traceback on request
            if os.environ.get("WINBACK_DEBUG"):
                raise
            reason = f"internal error ({type(exc).__name__}: {' '.join(str(exc).split())[:300]}); " \
                     f"set WINBACK_DEBUG=1 for the traceback"
            if as_json:
                emit_json({"ok": False, "error": reason})
            else:
                err.print(f"error: {reason}", markup=False, highlight=False)
            raise typer.Exit(70) from None

    return wrapper


def progress_bar(enabled: bool):
    """A Rich progress bar on stderr, or a no-op when output is JSON or not a terminal."""
    return Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn(),
                    console=err, transient=True, disable=not enabled)


def issue_errors(error_type: Callable[[], type]) -> Callable[[Callable], Callable]:
    """A decorator listing every issue of a spec error (segment spec, playbook): one per line, or as
    ``errors`` in JSON; exits with the error's code. ``error_type`` returns the class (imported late)."""

    def decorate(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            kind = error_type()
            try:
                return fn(*args, **kwargs)
            except kind as exc:
                if kwargs.get("json_output"):
                    emit_json({"ok": False, "error": str(exc), "error_count": len(exc.issues),
                               "errors": exc.as_dicts()})
                else:
                    for issue in exc.issues[1:]:
                        err.print(f"  {issue}", markup=False, highlight=False)
                    err.print(f"error: {exc}", markup=False, highlight=False)
                raise typer.Exit(exc.exit_code) from None

        return wrapper

    return decorate
