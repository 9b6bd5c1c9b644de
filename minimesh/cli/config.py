"""Config: apply, get, delete — kubectl's verbs for Istio manifests."""

import click

from minimesh.cli.base import CONTROL_OPTION, friendly, main


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--wait", is_flag=True, help="Return once every proxy has ACKed the new config (or fail naming those that did not).")
@click.option("--timeout", type=click.FloatRange(0), default=10.0, show_default=True,
              help="With --wait: seconds to wait for every ACK.")
@CONTROL_OPTION
@friendly
def apply(files, wait, timeout, control_url):
    """Apply Istio manifests (all or nothing)."""
    from minimesh.runner.config_commands import apply as run_apply

    run_apply(list(files), control=control_url, wait=wait, timeout=timeout)


@main.command()
@click.argument("files", nargs=-1, type=click.Path(exists=True, dir_okay=False))
@CONTROL_OPTION
@friendly
def analyze(files, control_url):
    """Check manifests across resources as `istioctl analyze` does (IST0101, IST0109, IST0127, IST0130,
    IST0131, IST0132, and MM0001: a Gateway no VirtualService binds); exit 79 on an Error."""
    from minimesh.runner.config_commands import analyze_command

    analyze_command(list(files), control=control_url)


@main.command()
@click.argument("kind", required=False)
@click.option("-o", "--output", type=click.Choice(["yaml", "json"]), default="yaml", show_default=True)
@click.option("-n", "--namespace", default=None, help="Only this namespace's resources (default: every namespace).")
@CONTROL_OPTION
@friendly
def get(kind, output, namespace, control_url):
    """Print the applied manifests (optionally of one KIND, e.g. virtualservice or vs)."""
    from minimesh.runner.config_commands import get as run_get

    run_get(kind, output=output, namespace=namespace, control=control_url)


@main.command()
@click.argument("kind")
@click.argument("name")
@click.option("-n", "--namespace", default="default", show_default=True,
              help="The resource's namespace (its metadata.namespace), as kubectl's -n.")
@CONTROL_OPTION
@friendly
def delete(kind, name, namespace, control_url):
    """Delete one applied resource, e.g. `minimesh delete virtualservice payments -n shop`."""
    from minimesh.runner.config_commands import delete as run_delete

    run_delete(kind, name, namespace=namespace, control=control_url)
