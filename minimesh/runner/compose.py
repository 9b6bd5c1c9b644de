"""A lesson as a Docker Compose stack: `minimesh compose LESSON_DIR`.

The same lesson.yaml that `minimesh up` runs as local processes becomes one
compose file, `compose/NN-slug.yaml`, with the shape a learner will meet again
in Kubernetes:

    control              the control plane; its home (config, CA keys) on a
                         named volume so it survives a restart; HTTPS on port
                         15010 (127.0.0.1 only); it writes the admin's and a
                         viewer's client certificates into the host's
                         $MINIMESH_HOME/credentials (default: the CLI's per-user
                         home, ~/.local/state/minimesh), a bind mount,
                         where the CLI and the TUI find them
    tokens               a one-shot job writing each service's join token (and
                         the mesh CA's certificate, to verify the control plane
                         by) into a volume only that service's sidecars mount
    <instance>           one container per app instance (`catalog-v1-0`), the
                         demo service listening on 8080 inside
    <instance>-sidecar   its sidecar, sharing the app's network namespace
                         (`network_mode: service:<instance>`) — a pod of two:
                         the app reaches its sidecar on 127.0.0.1, just as in
                         a Kubernetes pod
    gateway              a sidecar in gateway mode, published on port 8080
    <outside>            a program outside the mesh (lesson.yaml `outside:`), no
                         sidecar, on port 80 under its DNS name (a network alias)

Start order comes from health checks: sidecars and gateway wait for a healthy
control plane, the gateway for every healthy sidecar, so `up -d` returns with
the mesh nearly ready. The image has no curl, so each check is a Python line.

Two decisions deserve a word:

- A sidecar advertises its container's IP address, not a name. Other containers reach it either way, but only an address also
  works from the host, where `minimesh fault` and `minimesh lesson check` set
  fault knobs and read each sidecar's /stats (on Linux the host routes to
  compose's bridge networks; on macOS run them in a container instead:
  `docker compose exec control minimesh lesson check …`).
- A sidecar lives in its app's network namespace, so when the app container
  dies the namespace goes with it and the sidecar is left with a loopback
  interface only: it can no longer heartbeat, and the instance leaves the
  registry when its registration expires. When the app container is back,
  the sidecar container exits and `restart: unless-stopped` starts it again
  in the app's new namespace (see compose_pod.py).

The output is deterministic: `--check` regenerates it and compares, so a test
fails when a committed compose file drifts from its lesson.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from minimesh.pki.spiffe import GATEWAY_ACCOUNT, account_key
from minimesh.errors import UserError
from minimesh.runner.ports import GATEWAY_HTTPS_PORT, GATEWAY_PORT  # Gateway servers on 443 and 80
from minimesh.runner.topology import LESSON_TELEMETRY, Instance, Lesson, load_lesson

IMAGE = "minimesh:local"
WORKDIR = Path("/opt/minimesh")        # where compose/Dockerfile puts the repository
CONTROL_PORT = 15010
APP_PORT = 8080                        # every app listens here, in its own namespace
INBOUND_PORT, OUTBOUND_PORT, ADMIN_PORT = 15006, 15001, 15000
CONTROL_HOME = "/var/lib/minimesh"
CONTROL_URL = f"https://control:{CONTROL_PORT}"
# The host's MINIMESH_HOME, for the operator's client certificates; its default is the CLI's own
# per-user home (runner/state.py default_home: compose cannot read XDG_STATE_HOME's rule, so with
# XDG_STATE_HOME set, export MINIMESH_HOME too).
HOST_CREDENTIALS = "${MINIMESH_HOME:-~/.local/state/minimesh}/credentials"
TOKENS_DIR = "/tokens"                 # in the tokens job: one volume per service
TOKEN_MOUNT = "/run/minimesh"          # in a sidecar: its service's token volume, read-only

def healthcheck(test: str) -> dict:
    return {"test": ["CMD", "python", "-c", test], "interval": "2s", "timeout": "3s",
            "retries": 30, "start_period": "2s"}


def http_ok(port: int, path: str) -> dict:
    return healthcheck(f'import urllib.request; urllib.request.urlopen("http://127.0.0.1:{port}{path}", timeout=2)')


def https_up(port: int, path: str) -> dict:
    """Liveness of an HTTPS server: /healthz says nothing secret, so the certificate is not checked."""
    return healthcheck(f'import ssl, urllib.request; urllib.request.urlopen("https://127.0.0.1:{port}{path}", '
                       f'timeout=2, context=ssl._create_unverified_context())')


def tcp_open(port: int) -> dict:
    return healthcheck(f'import socket; socket.create_connection(("127.0.0.1", {port}), 2)')


def in_container(lesson: Lesson, command: tuple[str, ...]) -> list[str]:
    """The lesson's command as the image runs it: paths relative to the repository."""
    repo = lesson.dir.parent.parent
    out = []
    for arg in command:
        path = Path(arg)
        if arg == command[0] and path.name.startswith("python"):
            out.append("python")
        elif path.is_absolute():
            try:
                out.append(str(path.relative_to(repo)))
            except ValueError:
                raise UserError(f"{arg} is outside the repository {repo}, so the image does not hold it; "
                                f"compose runs only programs from the minimesh checkout") from None
        else:
            out.append(arg)
    return out


def sidecar_command(args: list[str]) -> list[str]:
    """`minimesh sidecar …` under compose_pod, which advertises this container's
    address and rejoins the app's namespace after the app restarts."""
    return ["python", "-m", "minimesh.runner.compose_pod", "--", *args]


def control_service(lesson: Lesson) -> dict:
    return {
        "image": IMAGE,
        # One service builds the image; every other service uses it by name.
        "build": {"context": "..", "dockerfile": "compose/Dockerfile", "network": "host",
                  "args": {"BASE_IMAGE": "${MINIMESH_BASE_IMAGE:-python:3.11-slim}"}},
        # The lesson's starting config (its Gateway, ...), applied on the control plane's first start,
        # as `minimesh up` applies it; the home volume keeps what was applied after that.
        "command": ["minimesh", "control", "--host", "0.0.0.0", "--port", str(CONTROL_PORT),
                    "--home", CONTROL_HOME,
                    *(a for p in lesson.manifests
                      for a in ("--initial-config", str(WORKDIR / "lessons" / lesson.dir.name / p.name)))],
        # Certificate lifetime: the lesson's cert_ttl, unless MINIMESH_CERT_TTL overrides it (as with `minimesh up`).
        "environment": {"MINIMESH_CERT_TTL": f"${{MINIMESH_CERT_TTL:-{lesson.cert_ttl or '24h'}}}",
                        "MINIMESH_LESSON": lesson.dir.name},  # `minimesh lesson check` of another lesson says so
        "ports": [f"127.0.0.1:{CONTROL_PORT}:{CONTROL_PORT}"],
        "volumes": [f"control-home:{CONTROL_HOME}", f"{HOST_CREDENTIALS}:{CONTROL_HOME}/credentials"],
        "healthcheck": https_up(CONTROL_PORT, "/healthz"),
        "restart": "unless-stopped",
    }


def tokens_service(services: list[str], accounts: dict[str, str] | None = None) -> dict:
    """A one-shot job: the join token of each service, into that service's own volume.

    Each sidecar mounts only its service's volume (as a Kubernetes pod gets only
    its own service account token), so no container but this one and the
    control plane sees the secret the tokens are made from.
    """
    return {
        "image": IMAGE,
        "command": ["python", "-m", "minimesh.runner.compose_pod", "tokens", "--home", CONTROL_HOME,
                    *(f"{s}={accounts[s]}" if s in (accounts or {}) and accounts[s] != s else s for s in services)],
        "volumes": [f"control-home:{CONTROL_HOME}", *(f"token-{s}:{TOKENS_DIR}/{s}" for s in services)],
        "depends_on": {"control": {"condition": "service_healthy"}},
    }


def app_service(lesson: Lesson, inst: Instance) -> dict:
    env = {**inst.spec.env, "HOST": "0.0.0.0", "PORT": str(APP_PORT), "SERVICE": inst.service,
           "VERSION": inst.version, "INSTANCE": inst.name,
           # Both spellings: many HTTP clients prefer the lower-case one when both are set.
           "HTTP_PROXY": f"http://127.0.0.1:{OUTBOUND_PORT}", "http_proxy": f"http://127.0.0.1:{OUTBOUND_PORT}"}
    return {
        "image": IMAGE,
        "command": in_container(lesson, inst.spec.command),
        "environment": env,
        "healthcheck": tcp_open(APP_PORT),
        "restart": "unless-stopped",
    }


def sidecar_service(inst: Instance) -> dict:
    labels = [arg for k, v in inst.spec.labels.items() for arg in ("--label", f"{k}={v}")]
    args = ["minimesh", "sidecar", "--control", CONTROL_URL, "--service", inst.service,
            *(("--namespace", inst.spec.namespace) if inst.spec.namespace != "default" else ()),
            "--version", inst.version, "--instance", inst.name, *labels, "--host", "0.0.0.0",
            "--app-port", str(APP_PORT), "--inbound-port", str(INBOUND_PORT),
            "--outbound-port", str(OUTBOUND_PORT), "--admin-port", str(ADMIN_PORT), *LESSON_TELEMETRY]
    return {
        "image": IMAGE,
        "network_mode": f"service:{inst.name}",
        "command": sidecar_command(args),
        "volumes": [f"token-{inst.service}:{TOKEN_MOUNT}:ro"],
        "depends_on": {"control": {"condition": "service_healthy"},
                       "tokens": {"condition": "service_completed_successfully"},
                       inst.name: {"condition": "service_started"}},
        "healthcheck": http_ok(ADMIN_PORT, "/ready"),
        "restart": "unless-stopped",
    }


def gateway_service(lesson: Lesson) -> dict:
    args = ["minimesh", "sidecar", "--gateway", "--service", "gateway", "--instance", "gateway",
            "--control", CONTROL_URL, "--host", "0.0.0.0", "--listen-port", str(GATEWAY_PORT),
            "--tls-listen-port", str(GATEWAY_HTTPS_PORT),
            "--admin-port", str(ADMIN_PORT), *LESSON_TELEMETRY]
    return {
        "image": IMAGE,
        "command": sidecar_command(args),
        "volumes": [f"token-gateway:{TOKEN_MOUNT}:ro"],
        "ports": [f"127.0.0.1:{GATEWAY_PORT}:{GATEWAY_PORT}", f"127.0.0.1:{GATEWAY_HTTPS_PORT}:{GATEWAY_HTTPS_PORT}"],
        "depends_on": {"control": {"condition": "service_healthy"},
                       "tokens": {"condition": "service_completed_successfully"},
                       **{f"{i.name}-sidecar": {"condition": "service_healthy"} for i in lesson.instances()}},
        "healthcheck": http_ok(ADMIN_PORT, "/ready"),
        "restart": "unless-stopped",
    }


def outside_service(lesson: Lesson, out) -> dict:
    """A program outside the mesh: no sidecar; other containers find it by its DNS name, on port 80."""
    env = {**out.spec.env, "HOST": "0.0.0.0", "PORT": "80", "SERVICE": out.name, "VERSION": "v1",
           "INSTANCE": out.name}
    return {
        "image": IMAGE,
        "command": in_container(lesson, out.spec.command),
        "environment": env,
        "networks": {"default": {"aliases": [out.host]}},
        "healthcheck": tcp_open(80),
        "restart": "unless-stopped",
    }


def compose_model(lesson: Lesson) -> dict:
    """The compose file as data (a pure function of the lesson)."""
    proxies = [*lesson.services, "gateway"]
    accounts = {v.service: account_key(v.namespace, v.service) for v in lesson.versions}
    accounts["gateway"] = GATEWAY_ACCOUNT
    services = {"control": control_service(lesson), "tokens": tokens_service(proxies, accounts)}
    for out in lesson.outside:
        services[out.name] = outside_service(lesson, out)
    for inst in lesson.instances():
        services[inst.name] = app_service(lesson, inst)
        services[f"{inst.name}-sidecar"] = sidecar_service(inst)
    services["gateway"] = gateway_service(lesson)
    volumes = {"control-home": {}, **{f"token-{p}": {} for p in proxies}}
    return {"services": services, "volumes": volumes}


def compose_path(lesson_dir: Path) -> Path:
    """compose/NN-slug.yaml beside the lessons folder."""
    lesson_dir = Path(lesson_dir).resolve()
    return lesson_dir.parent.parent / "compose" / f"{lesson_dir.name}.yaml"


def project_name(lesson: Lesson) -> str:
    """Each lesson its own compose project (containers, network, volumes): two lessons never collide.

    Passed with `-p` rather than written as a top-level `name:`, which
    docker-compose v1 refuses ("'name' does not match any of the regexes").
    """
    return f"minimesh-{lesson.dir.name}"


def render(lesson: Lesson) -> str:
    name = lesson.dir.name
    project = project_name(lesson)
    header = (f"# {lesson.title}: lessons/{name} as a Docker Compose stack.\n"
              f"# Generated by `minimesh compose lessons/{name}` — edit lesson.yaml, not this file.\n"
              f"#   docker compose -p {project} -f compose/{name}.yaml up -d\n"
              f"#   (docker-compose v1: the same with `docker-compose`; `down` keeps the config, `down -v` forgets it)\n"
              f"#   gateway: http://localhost:{GATEWAY_PORT} and https://localhost:{GATEWAY_HTTPS_PORT}   "
              f"control plane: https://localhost:{CONTROL_PORT}\n"
              f"#   minimesh status --control https://127.0.0.1:{CONTROL_PORT}; "
              f"minimesh tui --control https://127.0.0.1:{CONTROL_PORT} --gateway http://127.0.0.1:{GATEWAY_PORT}\n"
              f"# No registry? compose/make-base-image.sh, then MINIMESH_BASE_IMAGE=minimesh-base:bookworm.\n")
    body = yaml.dump(compose_model(lesson), Dumper=_Dumper, sort_keys=False, width=110, allow_unicode=True)
    return header + body


class _Dumper(yaml.SafeDumper):
    """Mappings as blocks, lists on one line: a command reads like a command."""


_Dumper.add_representer(list, lambda dumper, data: dumper.represent_sequence(
    "tag:yaml.org,2002:seq", data, flow_style=True))


def compose_lessons(lesson_dirs: list, *, check: bool = False, output: str | None = None) -> bool:
    """Write each lesson's compose file; with check, say which are out of date (False if any)."""
    if output and len(lesson_dirs) > 1:
        raise UserError("-o names one file; give one lesson folder with it")
    up_to_date = True
    for lesson_dir in lesson_dirs:
        lesson = load_lesson(lesson_dir)
        path = Path(output) if output else compose_path(lesson.dir)
        text = render(lesson)
        if output == "-":
            print(text, end="")
        elif check:
            if not path.is_file() or path.read_text() != text:
                up_to_date = False
                print(f"{path} is out of date; run: minimesh compose lessons/{lesson.dir.name}")
            else:
                print(f"{path} is up to date")
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {path}")
    return up_to_date
