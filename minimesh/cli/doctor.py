"""`minimesh doctor` and `minimesh home`: is this machine ready, is the stack healthy, where is it."""

import sys

import click

from minimesh.cli.base import friendly, main
from minimesh.runner.ports import GATEWAY_PORT


@main.command()
@click.option("--port", type=click.IntRange(0, 65535), default=GATEWAY_PORT, show_default=True,
              envvar="MINIMESH_GATEWAY_PORT", help="The gateway port `minimesh up` will want.")
@click.option("--compose", is_flag=True, help="Also require Docker and compose (for the compose stacks).")
@click.option("--control", "control_url", envvar="MINIMESH_CONTROL_URL", default=None,
              help="Check the control plane at this URL (a compose stack: https://127.0.0.1:15010).")
@friendly
def doctor(port, compose, control_url):
    """Check Python, the home, the gateway port, Docker and a running stack; each ✗ with its fix."""
    from minimesh.runner import doctor as checks
    from minimesh.runner.state import resolve_home

    text, ok = checks.report(checks.diagnose(home=resolve_home(), port=port, compose=compose, control=control_url))
    click.echo(text)
    if not ok:
        sys.exit(1)


@main.command()
def home():
    """Print this stack's home (MINIMESH_HOME, else the per-user default): `$(minimesh home)/logs`."""
    from minimesh.runner.state import resolve_home

    click.echo(resolve_home())
