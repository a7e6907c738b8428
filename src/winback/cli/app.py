"""The ``winback`` Typer application."""

from __future__ import annotations

import typer

from winback import __version__
from winback.cli.analytics_cmds import analyze_cmd, clv_app, metrics_cmd
from winback.cli.campaigns_cmd import campaigns_app, plan_cmd
from winback.cli.demo_cmd import demo_cmd
from winback.cli.dunning_cmds import dunning_app
from winback.cli.generate_cmd import generate_cmd
from winback.cli.ingest_cmd import ingest_cmd
from winback.cli.insights_cmds import at_risk_cmd, priorities_cmd, themes_cmd
from winback.cli.playbook_cmd import playbook_app
from winback.cli.reasons_cmd import reasons_app
from winback.cli.segments_cmd import segments_app
from winback.cli.web_cmds import apikeys_app, serve_cmd, users_app
from winback.cli.worker_cmd import suppressions_app, worker_cmd
from winback.cli.workspace_cmds import init, status_cmd

app = typer.Typer(
    name="winback",
    help="Win back lost customers: churn analysis, customer value, segments, campaigns, dunning.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"winback {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Show the version and exit.")) -> None:
    """winback: an open-source, self-hostable win-back and retention engine."""


app.command("init")(init)
app.command("status")(status_cmd)
app.command("ingest")(ingest_cmd)
app.command("generate")(generate_cmd)
app.command("demo")(demo_cmd)
app.command("analyze")(analyze_cmd)
app.command("metrics")(metrics_cmd)
app.add_typer(clv_app, name="clv")
app.add_typer(reasons_app, name="reasons")
app.add_typer(segments_app, name="segments")
app.add_typer(playbook_app, name="playbook")
app.command("priorities")(priorities_cmd)
app.command("at-risk")(at_risk_cmd)
app.command("themes")(themes_cmd)
app.command("worker")(worker_cmd)
app.add_typer(suppressions_app, name="suppressions")
app.command("plan")(plan_cmd)
app.add_typer(campaigns_app, name="campaigns")
app.command("serve")(serve_cmd)
app.add_typer(users_app, name="users")
app.add_typer(apikeys_app, name="apikeys")
app.add_typer(dunning_app, name="dunning")
from winback.cli.tracking_cmds import register as register_tracking  # noqa: E402
register_tracking(app)  # results, attribute, experiments, bounces


def main() -> None:
    app()
