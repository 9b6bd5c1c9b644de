"""The mesh's own processes: control plane, sidecar, join tokens, the wire sniffer."""

from pathlib import Path

import click

from minimesh.cli.base import friendly, home_option, main
from minimesh.errors import UserError


def _telemetry_off(off: bool) -> None:
    if off:  # read by SidecarOptions (minimesh/proxy/observe/telemetry.py: telemetry_enabled)
        import os

        os.environ["MINIMESH_TELEMETRY"] = "off"


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=15010, show_default=True, type=int, help="Port for the /v1 API (0: any free port).")
@home_option()
@click.option("--instance-ttl", default=10.0, show_default=True, type=float,
              help="Seconds without a heartbeat before an instance leaves the registry.")
@click.option("--cert-ttl", envvar="MINIMESH_CERT_TTL", default="24h", show_default=True,
              help="Lifetime of the certificates the mesh CA signs (e.g. 20s, 1h); sidecars renew at half-life.")
@click.option("--initial-config", multiple=True, metavar="FILE",
              help="Manifests to apply on the first start (an empty store); compose files pass the lesson's.")
@friendly
def control(host, port, home, instance_ttl, cert_ttl, initial_config):
    """Run the control plane: registry, config store, watch API, CA."""
    from minimesh.control.server import run_control_plane
    from minimesh.pki.ttl import parse_cert_ttl

    run_control_plane(host=host, port=port, home=home, instance_ttl=instance_ttl,
                      cert_ttl=parse_cert_ttl(cert_ttl), initial_config=tuple(initial_config))


@main.command()
@click.option("--control", "control_url", required=True, envvar="MINIMESH_CONTROL_URL", help="Control plane URL.")
@click.option("--service", required=True, help="The service this sidecar speaks for.")
@click.option("--version", "version_", default="v1", show_default=True, help="The service version (a label).")
@click.option("--namespace", default="default", show_default=True,
              help="The service's namespace (its identity and how it reads short host names follow it).")
@click.option("--instance", required=True, help="This instance's unique name.")
@click.option("--label", "labels", multiple=True, metavar="KEY=VALUE", help="Extra workload labels.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address the listeners bind to.")
@click.option("--app-port", type=int, help="Where the app listens (inbound traffic goes there).")
@click.option("--inbound-port", type=int, default=15006, show_default=True)
@click.option("--outbound-port", type=int, default=15001, show_default=True)
@click.option("--admin-port", type=int, default=15000, show_default=True)
@click.option("--gateway", is_flag=True, help="Run as the mesh's ingress gateway instead of a sidecar.")
@click.option("--listen-port", type=int, default=8080, show_default=True,
              help="Gateway: the public HTTP port (port 80 of a Gateway's servers).")
@click.option("--tls-listen-port", type=int, default=None,
              help="Gateway: the public HTTPS port (port 443 of a Gateway's servers); unset: not opened.")
@click.option("--advertise-host", default=None, help="Address other sidecars use to reach this one.")
@click.option("--token", envvar="MINIMESH_JOIN_TOKEN", default=None,
              help="Join token for this service (`minimesh token SERVICE`); without one: no identity, no mTLS.")
@click.option("--control-ca", envvar="MINIMESH_CONTROL_CA", default=None, metavar="FILE",
              help="The mesh CA's certificate, to verify the control plane by "
                   "(default: MINIMESH_HOME/credentials/ca.pem, else /run/minimesh/ca.pem).")
@click.option("--no-telemetry", is_flag=True, expose_value=False, callback=lambda ctx, p, off: _telemetry_off(off),
              help="No traces, metrics, access log or events (same as MINIMESH_TELEMETRY=off).")
@click.option("--access-log/--no-access-log", envvar="MINIMESH_ACCESS_LOG", default=False, show_default=True,
              help="A JSON line per request on stderr (Istio's accessLogFile; lessons turn it on).")
@click.option("--trace-sampling", envvar="MINIMESH_TRACE_SAMPLING", type=click.FloatRange(0, 100), default=1.0,
              show_default=True, metavar="PERCENT", help="Share of new traces recorded (lessons: 100).")
@click.option("--max-header-kb", type=click.IntRange(1), default=60, show_default=True,
              help="Request (and response) line plus headers, in KiB; more is 431 (502 from an upstream).")
@click.option("--max-headers", type=click.IntRange(1), default=100, show_default=True,
              help="Header fields per request or response.")
@click.option("--header-timeout", type=click.FloatRange(0, min_open=True), default=10.0, show_default=True,
              metavar="SECONDS", help="A request's headers must arrive within this (408, then closed).")
@click.option("--idle-timeout", type=click.FloatRange(0, min_open=True), default=3600.0, show_default=True,
              metavar="SECONDS", help="A kept-alive connection with no request is closed after this.")
@click.option("--stream-idle-timeout", type=click.FloatRange(0, min_open=True), default=300.0,
              show_default=True, metavar="SECONDS", help="A request with no bytes moving is closed after this.")
@click.option("--max-connections", type=click.IntRange(1), default=1024, show_default=True,
              help="Open connections per listener; the next one is closed (and counted in /stats).")
@click.option("--resolve", "resolve", envvar="MINIMESH_RESOLVE", default="", metavar="HOST:PORT=ADDR:PORT,...",
              help="Connect to ADDR:PORT for HOST:PORT, as curl --resolve (the runner's stand-in for DNS).")
@friendly
def sidecar(control_url, service, version_, instance, labels, host, app_port, inbound_port,
            outbound_port, admin_port, gateway, namespace, listen_port, tls_listen_port, advertise_host, token,
            control_ca, access_log, trace_sampling, max_header_kb, max_headers, header_timeout, idle_timeout,
            stream_idle_timeout, max_connections, resolve):
    """Run a sidecar proxy beside one app instance (or the gateway)."""
    from minimesh.proxy.transport.limits import Limits
    from minimesh.proxy.sidecar import SidecarOptions, run_sidecar

    resolve_map = {}
    for item in filter(None, resolve.split(",")):
        name, sep, address = item.partition("=")
        if not sep or ":" not in name or ":" not in address:
            raise UserError(f"--resolve {item!r} is not HOST:PORT=ADDRESS:PORT; write e.g. "
                            "rates.example.com:80=127.0.0.1:8089")
        resolve_map[name.lower()] = address
    label_map = {}
    for item in labels:
        key, sep, value = item.partition("=")
        if not sep:
            raise UserError(f"--label {item!r} is not KEY=VALUE; write e.g. --label tier=backend")
        label_map[key] = value
    run_sidecar(SidecarOptions(
        control_url=control_url, service=service, version=version_, instance=instance, namespace=namespace,
        labels=label_map, host=host, app_port=app_port, inbound_port=inbound_port,
        outbound_port=outbound_port, admin_port=admin_port, gateway=gateway,
        listen_port=listen_port, tls_listen_port=tls_listen_port,
        advertise_host=advertise_host or host, token=token or None,
        control_ca=control_ca or default_control_ca(), access_log=access_log, trace_sampling=trace_sampling / 100,
        resolve=resolve_map,
        limits=Limits(max_header_bytes=max_header_kb * 1024, max_header_fields=max_headers,
                      header_timeout=header_timeout, idle_timeout=idle_timeout,
                      stream_idle_timeout=stream_idle_timeout, max_connections=max_connections),
    ))


def default_control_ca() -> str | None:
    """Where a sidecar finds the mesh CA when not told: its stack's home, or the compose token mount."""
    import os

    from minimesh.pki.control_tls import CA_FILE, credentials_dir

    candidates = [credentials_dir(os.environ["MINIMESH_HOME"]) / CA_FILE] if os.environ.get("MINIMESH_HOME") else []
    candidates.append(Path("/run/minimesh") / CA_FILE)
    return next((str(c) for c in candidates if c.is_file()), None)


@main.command()
@click.argument("service")
@home_option("The control plane's home (its join secret is there; default: as for every command, "
             "MINIMESH_HOME else the per-user state directory).")
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
