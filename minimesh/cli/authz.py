"""Access policies: `minimesh authz check` — would a request be allowed, and by which policy and rule?"""

import click

from minimesh.cli.base import CONTROL_OPTION, friendly, main


@main.group()
def authz():
    """AuthorizationPolicy and RequestAuthentication, asked about without sending traffic."""


@authz.command()
@click.argument("source")
@click.argument("dest")
@click.argument("method")
@click.argument("path")
@click.option("--header", "headers", multiple=True, metavar="NAME=VALUE", help="A request header (repeatable).")
@click.option("--jwt", "jwt_file", type=click.Path(dir_okay=False), default=None,
              help="A file holding a JWT, sent as `Authorization: Bearer`.")
@click.option("--version", default="v1", show_default=True, help="The destination's version label.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@CONTROL_OPTION
@friendly
def check(source, dest, method, path, headers, jwt_file, version, as_json, control_url):
    """Would SOURCE's METHOD PATH to DEST be allowed by the applied policies?

    SOURCE is a service (its certificate's principal), a principal like
    cluster.local/ns/default/sa/web, or `plaintext` (no certificate). DEST is a
    service or `gateway`. Nothing is sent: the applied config answers, through
    the same layers the destination's proxy runs.

    \b
      minimesh authz check web payments POST /pay
      minimesh authz check plaintext gateway POST /api/checkout --jwt token.jwt
    """
    from minimesh.runner import authz_check
    from minimesh.runner.config_commands import control_client

    authz_check.run(control_client(control_url), source, dest, method, path, headers, jwt_file, version, as_json)
