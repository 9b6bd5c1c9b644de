"""A lesson's topology: which services run, in which versions, how many of each.

`lesson.yaml` is a public format — a user can mesh their own programs with it:

    title: Retries
    manifests: [gateway.yaml]    # the starting config: here the shop's Gateway + VirtualService
    services:
      payments:
        versions:
          v1: {command: [python, demo-services/payments.py], replicas: 2, env: {FAILURE_RATE: "0.3"}}

A service is any command. `python` means the interpreter minimesh runs on, and a
relative path is looked up first in the repository that holds the lesson (the
parent of its `lessons/` folder), then in the lesson folder, then in the current
directory — so a lesson file anywhere can mesh any program. `description`,
`manifests` and `steps` are read here but belong to others (the lesson guide);
they are passed through untouched. Any other key is an error naming its line.

`outside` lists programs that are *not* part of the mesh — an external API for
the egress lesson — each reached by a DNS name on port 80, with no sidecar:

    outside:
      rates: {host: rates.example.com, command: [python, demo-services/rates.py]}

(Docker Compose gives the container that name; locally the runner tells the
sidecars where the name points, as DNS would: runner/plan.py.)
"""

import dataclasses
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from minimesh.errors import ConfigError, UserError
from minimesh.config.source import line_of, read_file

LESSON_FILE = "lesson.yaml"
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_DNS_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)+$")
TOP_KEYS = {"title", "services", "description", "manifests", "steps", "cert_ttl", "outside"}
OUTSIDE_KEYS = {"host", "command", "env"}
SERVICE_KEYS = {"versions", "namespace"}
VERSION_KEYS = {"command", "replicas", "env", "labels"}

# Lessons run every sidecar with Istio's demo-profile telemetry: every request
# in the access log, every trace recorded. (A bare `minimesh sidecar` has the
# production defaults: no access log, 1 % of traces.)
LESSON_TELEMETRY = ("--access-log", "--trace-sampling", "100")


@dataclass(frozen=True)
class VersionSpec:
    """One version of one service: the command to run and how many replicas."""

    service: str
    version: str
    command: tuple[str, ...]
    replicas: int = 1
    env: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    namespace: str = "default"  # the service's Kubernetes namespace: its identity and host names follow it


@dataclass(frozen=True)
class OutsideSpec:
    """A program outside the mesh: `host` is the DNS name apps call it by (port 80)."""

    name: str
    host: str
    spec: VersionSpec  # its command and environment (service = name, one replica)


@dataclass(frozen=True)
class Instance:
    """One running copy of a version; named like a pod: `catalog-v1-0`."""

    service: str
    version: str
    index: int
    spec: VersionSpec

    @property
    def name(self) -> str:
        return f"{self.service}-{self.version}-{self.index}"


@dataclass(frozen=True)
class Lesson:
    dir: Path
    title: str
    versions: tuple[VersionSpec, ...]
    description: str | None = None
    manifests: tuple[Path, ...] = ()
    steps: object = None  # owned by the lesson guide; kept as parsed
    cert_ttl: str | None = None  # certificate lifetime for this lesson (MINIMESH_CERT_TTL overrides)
    outside: tuple["OutsideSpec", ...] = ()  # programs outside the mesh (no sidecar), by DNS name

    @property
    def services(self) -> list[str]:
        return list(dict.fromkeys(v.service for v in self.versions))

    def instances(self) -> list[Instance]:
        return [Instance(v.service, v.version, i, v) for v in self.versions for i in range(v.replicas)]


def lesson_file(lesson_dir: str | Path) -> Path:
    """`<lesson_dir>/lesson.yaml`; a missing folder or file is a UserError."""
    lesson_dir = Path(lesson_dir).resolve()
    if not lesson_dir.is_dir():
        raise UserError(f"lesson {lesson_dir} does not exist; `minimesh lesson list` shows the lessons")
    path = lesson_dir / LESSON_FILE
    if not path.is_file():
        raise UserError(f"{lesson_dir} has no {LESSON_FILE}; a lesson folder needs one (see DESIGN.md)")
    return path


def load_lesson(lesson_dir: str | Path) -> Lesson:
    """Read `<lesson_dir>/lesson.yaml`; a missing folder or file is a UserError."""
    path = lesson_file(lesson_dir)
    lesson_dir = path.parent
    document = read_file(path)
    data, lines = document.value, document.lines
    return parse_lesson(data, lines, source=str(path), lesson_dir=lesson_dir)


def parse_lesson(data, lines, *, source: str, lesson_dir: Path, cwd: Path | None = None) -> Lesson:
    """Validate parsed YAML into a Lesson; every error names file, line and field."""

    def fail(message: str, path: tuple) -> ConfigError:
        return ConfigError(message, source=source, line=line_of(lines, path),
                           field=".".join(str(p) for p in path))

    def mapping(value, path: tuple, allowed: set[str] | None = None) -> dict:
        if not isinstance(value, dict):
            raise fail(f"must be a mapping, not {_kind(value)}", path)
        for key in value:
            if allowed is not None and key not in allowed:
                raise fail(f"unknown field (allowed: {', '.join(sorted(allowed))})", path + (key,))
        return value

    def string(value, path: tuple) -> str:
        if not isinstance(value, str) or not value:
            raise fail(f"must be a non-empty string, not {_kind(value)}", path)
        return value

    if isinstance(data, dict) and "gateway" in data:
        raise fail("is gone: the ingress gateway serves only what Gateway + VirtualService manifests open, as "
                   "Istio's does; list one under `manifests:` (see lessons/01-hello-mesh/gateway.yaml)", ("gateway",))
    mapping(data, (), TOP_KEYS)
    for required in ("title", "services"):
        if required not in data:
            raise fail("is required", (required,))
    title = string(data["title"], ("title",))
    services = mapping(data["services"], ("services",))
    if not services:
        raise fail("needs at least one service", ("services",))

    search = _search_dirs(lesson_dir, cwd or Path.cwd())
    versions = []
    for service, body in services.items():
        spath = ("services", service)
        string(service, spath)
        mapping(body, spath, SERVICE_KEYS)
        namespace = string(body.get("namespace", "default"), spath + ("namespace",))
        if not _DNS_LABEL.match(namespace):
            raise fail("must be a namespace name: lowercase letters, digits and '-', at most 63", spath + ("namespace",))
        vmap = mapping(body.get("versions"), spath + ("versions",))
        if not vmap:
            raise fail("needs at least one version", spath + ("versions",))
        for version, vbody in vmap.items():
            vpath = spath + ("versions", version)
            versions.append(dataclasses.replace(_parse_version(str(service), str(version), vbody, vpath,
                                                               mapping, string, fail, search), namespace=namespace))

    description = data.get("description")
    if description is not None and not isinstance(description, str):
        raise fail(f"must be a string, not {_kind(description)}", ("description",))
    manifests = data.get("manifests") or []
    if not isinstance(manifests, list):
        raise fail(f"must be a list of file names, not {_kind(manifests)}", ("manifests",))
    manifest_paths = []
    for i, name in enumerate(manifests):
        p = lesson_dir / string(name, ("manifests", i))
        if not p.is_file():
            raise fail(f"file {p} does not exist", ("manifests", i))
        manifest_paths.append(p)

    cert_ttl = data.get("cert_ttl")
    if cert_ttl is not None:
        from minimesh.pki.ttl import parse_cert_ttl  # one place decides what a valid lifetime is
        try:
            parse_cert_ttl(string(cert_ttl, ("cert_ttl",)))
        except UserError as e:
            raise fail(str(e).split(": ", 1)[-1], ("cert_ttl",)) from e

    outside = []
    for name, body in mapping(data.get("outside") or {}, ("outside",)).items():
        opath = ("outside", name)
        mapping(body, opath, OUTSIDE_KEYS)
        host = string(body.get("host"), opath + ("host",)).lower()
        if name in services or not _DNS_NAME.match(host):
            raise fail(f"needs a unique name and a DNS name as host (like rates.example.com), not {host!r}", opath)
        spec = _parse_version(str(name), "v1", {k: v for k, v in body.items() if k != "host"}, opath,
                              mapping, string, fail, search)
        outside.append(OutsideSpec(str(name), host, spec))

    return Lesson(dir=lesson_dir, title=title, versions=tuple(versions),
                  description=description, manifests=tuple(manifest_paths), steps=data.get("steps"),
                  cert_ttl=cert_ttl, outside=tuple(outside))


def _parse_version(service, version, body, path, mapping, string, fail, search) -> VersionSpec:
    mapping(body, path, VERSION_KEYS)
    command = body.get("command")
    if not isinstance(command, list) or not command:
        raise fail("must be a non-empty list, e.g. [python, demo-services/web.py]", path + ("command",))
    args = [string(str(a) if isinstance(a, (int, float)) else a, path + ("command", i))
            for i, a in enumerate(command)]
    try:
        resolved = resolve_command(args, search)
    except FileNotFoundError as e:
        raise fail(str(e), path + ("command",)) from e

    replicas = body.get("replicas", 1)
    if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 1:
        raise fail(f"must be a whole number of at least 1, not {replicas!r}", path + ("replicas",))

    def str_map(name: str) -> dict[str, str]:
        raw = mapping(body.get(name) or {}, path + (name,))
        out = {}
        for k, v in raw.items():
            if not isinstance(v, (str, int, float, bool)) or isinstance(v, bool):
                raise fail(f"must be a string (quote it), not {_kind(v)}", path + (name, k))
            out[str(k)] = str(v)
        return out

    return VersionSpec(service=service, version=version, command=tuple(resolved),
                       replicas=replicas, env=str_map("env"), labels=str_map("labels"))


def _search_dirs(lesson_dir: Path, cwd: Path) -> list[Path]:
    """Where relative paths in a command are looked for, first match wins."""
    dirs = [p.parent for p in [lesson_dir, *lesson_dir.parents] if p.name == "lessons"][:1]
    return dirs + [lesson_dir, cwd]


def resolve_command(args: list[str], search: list[Path]) -> list[str]:
    """Make a lesson's command runnable from anywhere: absolute program and script paths."""
    program, *rest = args
    if program in ("python", "python3"):
        program = sys.executable
    elif "/" in program:
        found = _find(program, search)
        if found is None:
            raise FileNotFoundError(f"program {program} not found (looked in {', '.join(map(str, search))})")
        program = found
    elif shutil.which(program) is None:
        raise FileNotFoundError(f"program {program!r} not found on PATH")
    out = [program]
    for arg in rest:
        if arg.startswith("-") or ("/" not in arg and not arg.endswith(".py")):
            out.append(arg)  # a flag or a plain word, not a path
            continue
        found = _find(arg, search)
        if found is None and arg.endswith(".py"):
            # A script that is nowhere to be found would only fail later, in a log file.
            raise FileNotFoundError(f"file {arg} not found (looked in {', '.join(map(str, search))})")
        out.append(found or arg)
    return out


def _find(name: str, search: list[Path]) -> str | None:
    p = Path(name)
    if p.is_absolute():
        return str(p) if p.exists() else None
    for d in search:
        if (d / p).exists():
            return str((d / p).resolve())
    return None


def _kind(value) -> str:
    return {dict: "a mapping", list: "a list", type(None): "nothing"}.get(type(value), type(value).__name__)
