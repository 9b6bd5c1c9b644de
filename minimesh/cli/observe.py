"""Watching the mesh: the TUI, stat, tap, trace and explain (minimesh/telemetry, tui/)."""

import sys

import click

from minimesh.cli.base import CONTROL_OPTION, friendly, main


@main.command()
@CONTROL_OPTION
@click.option("--gateway", "gateway_url", envvar="MINIMESH_GATEWAY_URL", default=None,
              help="Gateway URL, for generated traffic and lesson checks (default: the running stack's).")
@click.option("--lesson", "lesson_ref", default=None, help="Lesson for the lesson panel (default: the running one).")
@click.option("--window", type=click.FloatRange(1, 300), default=30.0, show_default=True,
              help="Seconds the rollups (success, RPS, latency) are taken over.")
@click.option("--traffic", is_flag=True, help="Start with generated shop traffic on (the g key toggles it).")
@friendly
def tui(control_url, gateway_url, lesson_ref, window, traffic):
    """Watch the mesh's live traffic and steer it (q quits, ? shows the keys)."""
    from tui.run import run_tui

    sys.exit(run_tui(control_url, gateway=gateway_url, lesson=lesson_ref, window=window, traffic=traffic))


@main.command()
@click.option("--window", type=click.FloatRange(1, 300), default=60, show_default=True,
              help="Seconds of traffic to sum up.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@CONTROL_OPTION
@friendly
def stat(window, as_json, control_url):
    """Success rate, RPS and latency per service and version (Linkerd's columns)."""
    from minimesh.telemetry import commands

    commands.stat(window=window, as_json=as_json, control=control_url)


@main.command()
@click.option("--service", default=None, help="Only requests to or from this service.")
@click.option("--status", default=None, help="Only this status: 503, or a class like 5xx.")
@click.option("--reporter", type=click.Choice(["source", "destination", "all"]), default="source",
              show_default=True, help="source: one line per hop (the caller's view); destination: inbound sides.")
@click.option("--count", "-n", type=click.IntRange(1), default=None, help="Stop after this many lines.")
@click.option("--seconds", type=click.FloatRange(0), default=None, help="Stop after this many seconds.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@CONTROL_OPTION
@friendly
def tap(service, status, reporter, count, seconds, as_json, control_url):
    """Watch requests live, one line each (Ctrl-C stops)."""
    from minimesh.telemetry import commands

    commands.tap(service=service, status=status, as_json=as_json, count=count, seconds=seconds,
                 reporter=reporter, control=control_url)


@main.command()
@click.argument("trace_id", required=False)
@click.option("--service", default=None, help="Without TRACE_ID: the slowest recent trace through this service.")
@click.option("--json", "as_json", is_flag=True, help="The trace and its spans as JSON.")
@CONTROL_OPTION
@friendly
def trace(trace_id, service, as_json, control_url):
    """Draw a trace as a waterfall (default: the slowest recent one)."""
    from minimesh.telemetry import commands

    commands.trace(trace_id, as_json=as_json, service=service, control=control_url)


@main.command()
@click.argument("flag", required=False)
@friendly
def explain(flag):
    """What a response flag (UF, URX, NR, ...) means and what usually causes it."""
    from minimesh.telemetry import commands

    commands.explain(flag)
