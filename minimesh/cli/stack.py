"""A local stack: up, status, down, and stop/start of one instance (minimesh/runner)."""

import click

from minimesh.cli.base import CONTROL_OPTION, friendly, main
from minimesh.runner.ports import GATEWAY_PORT


@main.command()
@click.argument("lesson_dir", type=click.Path(file_okay=False, path_type=str))
@click.option("--detach", "-d", is_flag=True, help="Start in the background and return once ready.")
@click.option("--port", "--gateway-port", "gateway_port", type=click.IntRange(0, 65535), default=GATEWAY_PORT,
              show_default=True, envvar="MINIMESH_GATEWAY_PORT",
              help="The gateway's port on 127.0.0.1 (0: any free port; env MINIMESH_GATEWAY_PORT).")
@click.option("--fresh", is_flag=True,
              help="Forget the config applied in this lesson's last run and start from its own manifests.")
@click.option("--keep-config", is_flag=True, hidden=True, expose_value=False,
              help="Kept for old scripts: config is kept by default now.")
@friendly
def up(lesson_dir, detach, gateway_port, fresh):
    """Start a lesson's topology: control plane, apps, sidecars, gateway.

    Config applied in this lesson's last run is kept; --fresh starts clean."""
    from minimesh.runner.ports import GATEWAY_HINT, ensure_free
    from minimesh.runner.state import refuse_if_running, resolve_home
    from minimesh.runner.topology import lesson_file

    # The commonest first failures, said at once, before the heavy imports: no such lesson, this
    # home's stack already runs (named, with how to stop it), or the gateway port is taken.
    lesson_file(lesson_dir)
    refuse_if_running(resolve_home())
    if gateway_port:
        ensure_free(gateway_port, "gateway", GATEWAY_HINT)
    from minimesh.runner.stack import up as run_up

    run_up(lesson_dir, detach=detach, gateway_port=gateway_port, fresh=fresh)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@CONTROL_OPTION
@friendly
def status(as_json, control_url):
    """Show the running stack: addresses of every instance, config sync."""
    from minimesh.runner.stack import status as run_status

    run_status(as_json=as_json, control=control_url)


@main.command()
@friendly
def down():
    """Stop the running stack and every process it started."""
    from minimesh.runner.stack import down as run_down

    run_down()


@main.command()
@click.argument("instance")
@friendly
def stop(instance):
    """Stop one instance gracefully: its sidecar leaves and drains, then its app stops.

    `minimesh stop control` stops the control plane until `minimesh start control`."""
    from minimesh.runner.instances import change, describe

    click.echo(describe(change(instance, "stop"), "stop"))


@main.command()
@click.argument("instance")
@friendly
def start(instance):
    """Start a stopped instance (or the control plane) again: its app, then its sidecar, until ready."""
    from minimesh.runner.instances import change, describe

    click.echo(describe(change(instance, "start"), "start"))
