"""The `minimesh` command: every subcommand, each a thin shell over a module.

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


# --- the mesh's own processes (started by the runner, or by hand) ---------


def _telemetry_off(off: bool) -> None:
    if off:  # read by SidecarOptions (minimesh/proxy/telemetry.py: telemetry_enabled)
        import os

        os.environ["MINIMESH_TELEMETRY"] = "off"


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=15010, show_default=True, type=int, help="Port for the /v1 API (0: any free port).")
@click.option("--home", envvar="MINIMESH_HOME", default=".minimesh", show_default=True,
              help="Where config, keys and state are kept.")
@click.option("--instance-ttl", default=10.0, show_default=True, type=float,
              help="Seconds without a heartbeat before an instance leaves the registry.")
@click.option("--cert-ttl", envvar="MINIMESH_CERT_TTL", default="24h", show_default=True,
              help="Lifetime of the certificates the mesh CA signs (e.g. 20s, 1h); sidecars renew at half-life.")
@friendly
def control(host, port, home, instance_ttl, cert_ttl):
    """Run the control plane: registry, config store, watch API, CA."""
    from minimesh.control.server import run_control_plane
    from minimesh.pki.ttl import parse_cert_ttl

    run_control_plane(host=host, port=port, home=home, instance_ttl=instance_ttl,
                      cert_ttl=parse_cert_ttl(cert_ttl))


@main.command()
@click.option("--control", "control_url", required=True, envvar="MINIMESH_CONTROL_URL", help="Control plane URL.")
@click.option("--service", required=True, help="The service this sidecar speaks for.")
@click.option("--version", "version_", default="v1", show_default=True, help="The service version (a label).")
@click.option("--instance", required=True, help="This instance's unique name.")
@click.option("--label", "labels", multiple=True, metavar="KEY=VALUE", help="Extra workload labels.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address the listeners bind to.")
@click.option("--app-port", type=int, help="Where the app listens (inbound traffic goes there).")
@click.option("--inbound-port", type=int, default=15006, show_default=True)
@click.option("--outbound-port", type=int, default=15001, show_default=True)
@click.option("--admin-port", type=int, default=15000, show_default=True)
@click.option("--gateway", is_flag=True, help="Run as the mesh's ingress gateway instead of a sidecar.")
@click.option("--listen-port", type=int, default=8080, show_default=True, help="Gateway: the public port.")
@click.option("--default-service", default=None, help="Gateway: where a Host that names no service goes.")
@click.option("--advertise-host", default=None, help="Address other sidecars use to reach this one.")
@click.option("--token", envvar="MINIMESH_JOIN_TOKEN", default=None,
              help="Join token for this service (`minimesh token SERVICE`); without one: no identity, no mTLS.")
@click.option("--no-telemetry", is_flag=True, expose_value=False, callback=lambda ctx, p, off: _telemetry_off(off),
              help="No traces, metrics, access log or events (same as MINIMESH_TELEMETRY=off).")
@click.option("--access-log/--no-access-log", envvar="MINIMESH_ACCESS_LOG", default=False, show_default=True,
              help="A JSON line per request on stderr (Istio's accessLogFile; lessons turn it on).")
@click.option("--trace-sampling", envvar="MINIMESH_TRACE_SAMPLING", type=click.FloatRange(0, 100), default=1.0,
              show_default=True, metavar="PERCENT", help="Share of new traces recorded (lessons: 100).")
@friendly
def sidecar(control_url, service, version_, instance, labels, host, app_port, inbound_port,
            outbound_port, admin_port, gateway, listen_port, default_service, advertise_host, token,
            access_log, trace_sampling):
    """Run a sidecar proxy beside one app instance (or the gateway)."""
    from minimesh.proxy.sidecar import SidecarOptions, run_sidecar

    label_map = {}
    for item in labels:
        key, sep, value = item.partition("=")
        if not sep:
            raise UserError(f"--label {item!r} is not KEY=VALUE; write e.g. --label tier=backend")
        label_map[key] = value
    run_sidecar(SidecarOptions(
        control_url=control_url, service=service, version=version_, instance=instance,
        labels=label_map, host=host, app_port=app_port, inbound_port=inbound_port,
        outbound_port=outbound_port, admin_port=admin_port, gateway=gateway,
        listen_port=listen_port, default_service=default_service,
        advertise_host=advertise_host or host, token=token or None,
        access_log=access_log, trace_sampling=trace_sampling / 100,
    ))


@main.command()
@click.argument("service")
@click.option("--home", envvar="MINIMESH_HOME", default=".minimesh", show_default=True,
              help="The control plane's home (its join secret is there).")
@friendly
def token(service, home):
    """Print the join token a sidecar of SERVICE presents to get its certificate."""
    from minimesh.pki.tokens import issue_token

    click.echo(issue_token(home, service))


@main.command()
@click.argument("service")
@click.option("--seconds", type=click.FloatRange(0, min_open=True), default=None, help="Stop after this long.")
@click.option("--count", type=click.IntRange(1), default=None, help="Stop after this many chunks.")
@click.option("--control", "control_url", envvar="MINIMESH_CONTROL_URL", default=None,
              help="Control plane URL (default: the running stack's, from MINIMESH_HOME).")
@friendly
def sniff(service, seconds, count, control_url):
    """Show the bytes between sidecars: relay one of SERVICE's endpoints and print what passes (local mode)."""
    from minimesh.runner.config_commands import control_client
    from minimesh.runner.sniff import run

    run(control_client(control_url).url, service, seconds, count)


# --- a local stack: up, status, down (minimesh/runner) -----------------------

CONTROL_OPTION = click.option(
    "--control", "control_url", envvar="MINIMESH_CONTROL_URL", default=None,
    help="Control plane URL (default: the running stack's, from MINIMESH_HOME).")


@main.command()
@click.argument("lesson_dir", type=click.Path(file_okay=False, path_type=str))
@click.option("--detach", "-d", is_flag=True, help="Start in the background and return once ready.")
@click.option("--gateway-port", type=int, default=8080, show_default=True, envvar="MINIMESH_GATEWAY_PORT",
              help="The gateway's port on 127.0.0.1 (0: any free port).")
@click.option("--keep-config", is_flag=True, help="Keep the config applied in this home's last run.")
@friendly
def up(lesson_dir, detach, gateway_port, keep_config):
    """Start a lesson's topology: control plane, apps, sidecars, gateway."""
    from minimesh.runner.stack import up as run_up

    run_up(lesson_dir, detach=detach, gateway_port=gateway_port, keep_config=keep_config)


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
    """Stop one instance gracefully: its sidecar leaves and drains, then its app stops."""
    from minimesh.runner.instances import change, describe

    click.echo(describe(change(instance, "stop"), "stop"))


@main.command()
@click.argument("instance")
@friendly
def start(instance):
    """Start a stopped instance again: its app, then its sidecar, until it is ready."""
    from minimesh.runner.instances import change, describe

    click.echo(describe(change(instance, "start"), "start"))


# --- config: apply, get, delete (kubectl's verbs) ---------------------------


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
@click.argument("kind", required=False)
@click.option("-o", "--output", type=click.Choice(["yaml", "json"]), default="yaml", show_default=True)
@CONTROL_OPTION
@friendly
def get(kind, output, control_url):
    """Print the applied manifests (optionally of one KIND, e.g. virtualservice or vs)."""
    from minimesh.runner.config_commands import get as run_get

    run_get(kind, output=output, control=control_url)


@main.command()
@click.argument("kind")
@click.argument("name")
@CONTROL_OPTION
@friendly
def delete(kind, name, control_url):
    """Delete one applied resource, e.g. `minimesh delete virtualservice payments`."""
    from minimesh.runner.config_commands import delete as run_delete

    run_delete(kind, name, control=control_url)



# --- lessons -----------------------------------------------------------------


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
@friendly
def lesson_check(ref, number, control_url, gateway_url):
    """Verify the live stack against a lesson step; say what is missing."""
    from minimesh.lesson import commands

    if not commands.check(ref, number, control=control_url, gateway=gateway_url):
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


# --- the terminal UI (tui/) ---------------------------------------------------


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


# --- Docker Compose (minimesh/runner/compose.py) -----------------------------


@main.command()
@click.argument("lesson_dirs", nargs=-1, type=click.Path(exists=True, file_okay=False, path_type=str))
@click.option("--check", is_flag=True, help="Exit 1 if a committed compose file differs from what its lesson generates.")
@click.option("-o", "--output", default=None, help="Write here instead of compose/NN-slug.yaml ('-': stdout).")
@friendly
def compose(lesson_dirs, check, output):
    """Generate each lesson's Docker Compose file, compose/NN-slug.yaml (default: every lesson)."""
    from minimesh.runner.compose import compose_lessons

    if not compose_lessons(list(lesson_dirs), check=check, output=output):
        sys.exit(1)


# --- telemetry: stat, tap, trace, explain (minimesh/telemetry) ---------------


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
@click.argument("locust_args", nargs=-1, type=click.UNPROCESSED)
@friendly
def load(ref, users, spawn_rate, run_time, csv_prefix, gateway_url, locust_args):
    """Run a lesson's locustfile headless against the gateway; exit with locust's code.

    Anything after `--` goes to locust as it is."""
    from minimesh.lesson.load import LoadOptions, run_load

    sys.exit(run_load(ref, LoadOptions(users=users, spawn_rate=spawn_rate, run_time=run_time,
                                       csv_prefix=csv_prefix, locust_args=tuple(locust_args)),
                      gateway=gateway_url))


if __name__ == "__main__":
    main()
