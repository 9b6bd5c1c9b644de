"""What every subcommand shares: the `minimesh` group, the --control option and
the rule that a user-fixable error is one line and exit 1.

Known errors (`UserError`, `ConfigError`) become one clear line and exit 1;
nothing else is caught here, so a real bug still shows its traceback.
"""

import functools
import sys

import click

from minimesh.errors import ConfigError, UserError

def friendly(fn):
    """Turn the errors a user can fix into one line on stderr and exit code 1."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (UserError, ConfigError) as e:
            click.echo(f"minimesh: {e}", err=True)
            sys.exit(1)

    return wrapper


@click.group()
@click.version_option(package_name="minimesh")
def main():
    """minimesh — a service mesh built to be learned from."""


CONTROL_OPTION = click.option(
    "--control", "control_url", envvar="MINIMESH_CONTROL_URL", default=None,
    help="Control plane URL (default: the running stack's, from MINIMESH_HOME).")


HOME_HELP = ("Where a stack keeps its state, keys and logs (default: MINIMESH_HOME, else a per-user "
             "state directory, e.g. ~/.local/state/minimesh; `minimesh status` prints it).")


def home_option(help_text: str = HOME_HELP):
    """--home for commands that run a mesh process themselves; resolved like every other command's."""
    return click.option("--home", envvar="MINIMESH_HOME", default=None, help=help_text,
                        callback=lambda ctx, param, value: str(_resolve(value)))


def _resolve(value):
    from minimesh.runner.state import resolve_home

    return resolve_home(value)
