"""Lessons: list, show, step, check; fault knobs and locust load."""

import sys

import click

from minimesh.cli.base import CONTROL_OPTION, friendly, main


@main.group()
def lesson():
    """List, show, step through and check the lessons."""


@lesson.command("list")
@friendly
def lesson_list():
    """The lessons, in order."""
    from minimesh.lesson import commands

    commands.list_lessons()


@lesson.command("show")
@click.argument("ref")
@friendly
def lesson_show(ref):
    """A lesson's steps and the commands of each (REF: 02, retries or 02-retries)."""
    from minimesh.lesson import commands

    commands.show(ref)


@lesson.command("step")
@click.argument("ref")
@click.argument("number", type=int)
@CONTROL_OPTION
@friendly
def lesson_step(ref, number, control_url):
    """Put step NUMBER of a lesson in force: its manifests and fault knobs."""
    from minimesh.lesson import commands

    commands.step(ref, number, control=control_url)


@lesson.command("check")
@click.argument("ref")
@click.option("--step", "number", type=int, default=None,
              help="The step to check (default: the current one).")
@CONTROL_OPTION
@click.option("--gateway", "gateway_url", envvar="MINIMESH_GATEWAY_URL", default=None,
              help="Gateway URL (default: the running stack's).")
@click.option("--gateway-https", "gateway_https_url", envvar="MINIMESH_GATEWAY_HTTPS_URL", default=None,
              help="The gateway's HTTPS URL, for checks over TLS (default: the running stack's).")
@friendly
def lesson_check(ref, number, control_url, gateway_url, gateway_https_url):
    """Verify the live stack against a lesson step; say what is missing."""
    from minimesh.lesson import commands

    if not commands.check(ref, number, control=control_url, gateway=gateway_url,
                          gateway_https=gateway_https_url):
        sys.exit(1)


@main.command()
@click.argument("target")
@click.option("--failure-rate", type=click.FloatRange(0, 1), default=None, help="Share of requests answered 503.")
@click.option("--delay-ms", type=click.FloatRange(0), default=None, help="Added latency per request.")
@CONTROL_OPTION
@friendly
def fault(target, failure_rate, delay_ms, control_url):
    """Set an app's fault knobs at run time (TARGET: an instance or a whole service)."""
    from minimesh.lesson import commands

    commands.fault(target, failure_rate, delay_ms, control=control_url)


@main.command(context_settings={"ignore_unknown_options": True})
@click.argument("ref")
@click.option("-u", "--users", type=click.IntRange(1), default=None,
              help="Simulated shoppers (default 20, or the lesson's own load shape).")
@click.option("-r", "--spawn-rate", type=click.FloatRange(0, min_open=True), default=None,
              help="Shoppers started per second (default 5).")
@click.option("-t", "--run-time", default="1m", show_default=True, help="How long, e.g. 30s, 2m.")
@click.option("--csv", "csv_prefix", default=None, help="CSV prefix (default: MINIMESH_HOME/load/<lesson>-<time>).")
@click.option("--gateway", "gateway_url", envvar="MINIMESH_GATEWAY_URL", default=None,
              help="Gateway URL (default: the running stack's).")
@click.option("--each-step", is_flag=True,
              help="Run it once per step of the lesson (after `lesson step`), CSVs per step, and print a table.")
@click.option("--step", "only", type=int, multiple=True, help="With --each-step: only this step (repeatable).")
@click.option("--row", "rows", multiple=True, default=("Aggregated",), show_default=True,
              help="With --each-step: the locust row(s) to tabulate, e.g. /api/checkout (repeatable).")
@click.option("--results", default=None, help="With --each-step: write the table as Markdown to this file.")
@CONTROL_OPTION
@click.argument("locust_args", nargs=-1, type=click.UNPROCESSED)
@friendly
def load(ref, users, spawn_rate, run_time, csv_prefix, gateway_url, each_step, only, rows, results, control_url,
         locust_args):
    """Run a lesson's locustfile headless against the gateway; exit with locust's code.

    Anything after `--` goes to locust as it is."""
    from minimesh.lesson.load import LoadOptions, run_load

    opts = LoadOptions(users=users, spawn_rate=spawn_rate, run_time=run_time, csv_prefix=csv_prefix,
                       locust_args=tuple(locust_args))
    if each_step:
        from minimesh.lesson.load_steps import run_each_step

        sys.exit(run_each_step(ref, opts, tuple(rows), results, gateway=gateway_url, control=control_url,
                               only=tuple(only)))
    sys.exit(run_load(ref, opts, gateway=gateway_url))
