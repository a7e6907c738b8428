"""``winback serve`` (the web app), ``winback users`` and ``winback apikeys`` (who may use it)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from winback.cli.common import JsonOpt, WorkspaceOpt, emit_json, err, handle_errors, out
from winback.config import load_settings

users_app = typer.Typer(help="Dashboard users (roles: viewer, marketer, admin).", no_args_is_help=True)
apikeys_app = typer.Typer(help="API keys for the REST API.", no_args_is_help=True)
RoleOpt = Annotated[str, typer.Option("--role", help="viewer | marketer | admin")]


@handle_errors
def serve_cmd(
    workspace: WorkspaceOpt = Path("."),
    host: Annotated[Optional[str], typer.Option(help="Interface to listen on (default [web] host).")] = None,
    port: Annotated[Optional[int], typer.Option(help="Port (default [web] port).", min=1, max=65535)] = None,
    with_worker: Annotated[bool, typer.Option("--with-worker", help="Also run the delivery worker in this "
                                                                    "process.")] = False,
    workers: Annotated[Optional[int], typer.Option(help="uvicorn processes (PostgreSQL only).", min=1)] = None,
    access_log: Annotated[bool, typer.Option("--access-log/--no-access-log",
                                             help="Log every request (costs CPU under heavy event load).")] = True,
) -> None:
    """Serve the dashboard, the REST API and the links in messages (unsubscribe, tracking, surveys)."""
    from winback.web.server import serve
    from winback.workspace import migrate

    settings = load_settings(workspace)
    migrate(settings)
    url = f"http://{host or settings.web.host}:{port or settings.web.port}"
    err.print(f"winback serving {settings.workspace} on {url} (dashboard {url}/, API {url}/api/docs)",
              markup=False, highlight=False)
    serve(settings, host=host, port=port, with_worker=with_worker, workers=workers, access_log=access_log)


def _now(settings):
    return settings.clock().now()


def _engine(settings):
    from winback.kit.db import make_engine

    return make_engine(settings.resolved_state_url)


def _password(password_stdin: bool) -> str:
    if password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = typer.prompt("Password", hide_input=True)
    again = typer.prompt("Repeat", hide_input=True)
    if first != again:
        from winback.kit.errors import WinbackError

        raise WinbackError("the passwords differ")
    return first


@users_app.command("add")
@handle_errors
def users_add(email: str, workspace: WorkspaceOpt = Path("."), role: RoleOpt = "viewer",
              name: Annotated[Optional[str], typer.Option(help="Display name.")] = None,
              password_stdin: Annotated[bool, typer.Option("--password-stdin", help="Read the password from "
                                                                                     "stdin.")] = False,
              json_output: JsonOpt = False) -> None:
    """Create a dashboard user."""
    from winback.web.auth import create_user

    settings = load_settings(workspace)
    user = create_user(_engine(settings), email, _password(password_stdin), role, name=name, now=_now(settings))
    if json_output:
        emit_json({"ok": True, "user": user})
        return
    out.print(f"user {user['email']} ({user['role']}) created", markup=False, highlight=False)


@users_app.command("password")
@handle_errors
def users_password(email: str, workspace: WorkspaceOpt = Path("."),
                   password_stdin: Annotated[bool, typer.Option("--password-stdin")] = False,
                   json_output: JsonOpt = False) -> None:
    """Set a user's password (and sign out their sessions)."""
    from winback.web.auth import set_password

    settings = load_settings(workspace)
    set_password(_engine(settings), email, _password(password_stdin))
    if json_output:
        emit_json({"ok": True})
        return
    out.print(f"password of {email} changed; their sessions are signed out", markup=False, highlight=False)


@users_app.command("list")
@handle_errors
def users_list(workspace: WorkspaceOpt = Path("."), json_output: JsonOpt = False) -> None:
    """List users."""
    from winback.web.auth import list_users

    rows = list_users(_engine(load_settings(workspace)))
    if json_output:
        emit_json({"ok": True, "users": rows})
        return
    grid = Table("email", "role", "name", "last login", box=None)
    for r in rows:
        grid.add_row(r["email"], r["role"] + (" (disabled)" if r["disabled"] else ""), r["name"] or "",
                     r["last_login_at"].strftime("%Y-%m-%d %H:%M") if r["last_login_at"] else "never")
    out.print(grid)


@apikeys_app.command("create")
@handle_errors
def apikeys_create(name: str, workspace: WorkspaceOpt = Path("."), role: RoleOpt = "marketer",
                   json_output: JsonOpt = False) -> None:
    """Create an API key (shown once)."""
    from winback.web.auth import create_api_key

    settings = load_settings(workspace)
    key = create_api_key(_engine(settings), name, role, now=_now(settings))
    if json_output:
        emit_json({"ok": True, **key})
        return
    out.print(f"API key {key['prefix']} ({key['role']}); keep it, it is not shown again:", highlight=False)
    out.print(key["key"], markup=False, highlight=False)


@apikeys_app.command("list")
@handle_errors
def apikeys_list(workspace: WorkspaceOpt = Path("."), json_output: JsonOpt = False) -> None:
    """List API keys (never the secrets)."""
    from winback.web.auth import list_api_keys

    rows = list_api_keys(_engine(load_settings(workspace)))
    if json_output:
        emit_json({"ok": True, "keys": rows})
        return
    grid = Table("prefix", "name", "role", "created", "last used", "revoked", box=None)
    for r in rows:
        grid.add_row(r["prefix"], r["name"], r["role"], r["created_at"].strftime("%Y-%m-%d"),
                     r["last_used_at"].strftime("%Y-%m-%d %H:%M") if r["last_used_at"] else "-",
                     r["revoked_at"].strftime("%Y-%m-%d") if r["revoked_at"] else "")
    out.print(grid)


@apikeys_app.command("revoke")
@handle_errors
def apikeys_revoke(prefix: str, workspace: WorkspaceOpt = Path("."), json_output: JsonOpt = False) -> None:
    """Revoke an API key by its prefix."""
    from winback.kit.errors import WinbackError
    from winback.web.auth import revoke_api_key

    settings = load_settings(workspace)
    if not revoke_api_key(_engine(settings), prefix, now=_now(settings)):
        raise WinbackError(f"no active API key with prefix {prefix!r}")
    if json_output:
        emit_json({"ok": True})
        return
    out.print(f"API key {prefix} revoked", markup=False, highlight=False)
