"""`minimesh apply`, `get` and `delete`: kubectl's verbs against the control plane.

`apply` parses every file locally first, so a bad manifest is reported with
its file, line and field and nothing is sent; the control plane checks the
whole set again (references between resources) and applies all or nothing.
Which control plane: `--control URL` (or MINIMESH_CONTROL_URL) if given, else
the one recorded for the running stack in MINIMESH_HOME.
"""

import json
import time

import click
import yaml

from minimesh.errors import UserError
from minimesh.runner import state as st
from minimesh.runner.control_client import ControlClient

# kubectl-style names for each kind: plural, singular and Istio's short name.
KINDS = {
    "Gateway": ("gateways", "gateway", "gw"),
    "VirtualService": ("virtualservices", "virtualservice", "vs"),
    "DestinationRule": ("destinationrules", "destinationrule", "dr"),
    "PeerAuthentication": ("peerauthentications", "peerauthentication", "pa"),
    "AuthorizationPolicy": ("authorizationpolicies", "authorizationpolicy", "ap"),
    "RequestAuthentication": ("requestauthentications", "requestauthentication", "ra"),
    "ServiceEntry": ("serviceentries", "serviceentry", "se"),
    "Sidecar": ("sidecars", "sidecar"),
    "Secret": ("secrets", "secret"),  # a Gateway's TLS credential (shown with its fingerprint, never its key)
}


def canonical_kind(name: str) -> str:
    wanted = name.lower()
    for kind, aliases in KINDS.items():
        if wanted == kind.lower() or wanted in aliases:
            return kind
    raise UserError(f"unknown kind {name!r}; minimesh knows {', '.join(KINDS)}")


def control_client(control: str | None, home: str | None = None) -> ControlClient:
    if control:
        return ControlClient(control, home=home)
    home_path = st.resolve_home(home)
    state = st.read_state(home_path)
    if not state or not st.is_locked(home_path):
        raise UserError(f"no stack is running in {home_path}; start one with `minimesh up LESSON_DIR` "
                        "or pass --control URL")
    return ControlClient(state["control_url"], home=home_path)


def apply(files: list[str], *, control: str | None = None, home: str | None = None,
          wait: bool = False, timeout: float = 10.0) -> None:
    """Apply all or nothing; with `wait`, return once every proxy ACKed the new version (rollout.py)."""
    from minimesh.config import load_files

    resources = load_files(files)  # ConfigError names file:line: field; nothing is sent
    if not resources:
        raise UserError(f"no manifests found in {', '.join(files)}")
    warn_surprises(resources)
    client = control_client(control, home)
    started = time.monotonic()
    answer = client.apply([r.manifest for r in resources], source=", ".join(files))
    for result in answer.get("results", []):
        click.echo(f"{result['kind'].lower()}/{result['name']} {result['action']}")
    # What istioctl analyze would say about the config now in force: warned, never refused (as Istio).
    for message in analyze_running(client):
        click.echo(f"warning: {message}", err=True)
    click.echo(f"config version {answer.get('version')}")
    if wait:
        from minimesh.runner.rollout import wait_for_rollout

        changed = any(r.get("action") != "unchanged" for r in answer.get("results", []))
        click.echo(wait_for_rollout(client, int(answer["version"]), timeout, started=started).describe(changed))


def warn_surprises(resources) -> None:
    """Print what is accepted as on Istio but surprises its users (e.g. a fault without percentage)."""
    for resource in resources:
        for line in resource.warnings:
            click.echo(f"warning: {line}", err=True)


def analyze_running(client, extra=()) -> list:
    """`minimesh analyze` over the config in force (with `extra` resources over it) and the workloads running."""
    from minimesh.config import DEFAULT_NAMESPACE, analyze, parse_resource
    from minimesh.config.namespaces import service_key

    in_force = {}
    for doc in client.config(None).get("resources", []):
        resource = parse_resource(doc, "<control plane>")
        in_force[resource.key] = resource
    in_force.update({r.key: r for r in extra})
    status, answer = client.request("GET", "/v1/instances")
    if status != 200:
        return analyze(in_force.values())
    instances = answer.get("instances", [])
    # Known by their keys: 'pricing' in default, 'catalog.foo.svc.cluster.local' in foo.
    services = {service_key(i["service"], i.get("namespace") or DEFAULT_NAMESPACE)
                for i in instances if i.get("kind", "sidecar") == "sidecar"}
    # Hosts a ServiceEntry declares are known too (istioctl analyze counts them as services).
    services |= {h for r in in_force.values() if r.kind == "ServiceEntry" for h in getattr(r, "hosts", ())}
    workloads = [(i.get("namespace") or DEFAULT_NAMESPACE, i.get("labels") or {}) for i in instances]
    return analyze(in_force.values(), services, workloads)


ANALYZER_FOUND_ISSUES = 79  # istioctl analyze's exit code when it finds an Error-level message


def analyze_command(files: list[str], *, control: str | None = None, home: str | None = None) -> None:
    """Print what istioctl analyze would for `files` (over the running config, if a stack runs); exit 79 on an Error."""
    from minimesh.config import analyze, load_files

    resources = load_files(files)  # a manifest minimesh refuses is an error here, as at apply
    warn_surprises(resources)
    try:
        client = control_client(control, home)
    except UserError:
        client = None  # no stack: the files alone, without host and selector checks
    messages = analyze_running(client, resources) if client is not None else analyze(resources)
    for message in messages:
        click.echo(message.istioctl())
    if not messages:
        what = (["the config in force"] if client is not None else []) + [", ".join(files)] * bool(files)
        click.echo("✔ No validation issues found" + (f" when analyzing {' and '.join(what)}" if what else ""))
    if any(m.level == "Error" for m in messages):
        raise SystemExit(ANALYZER_FOUND_ISSUES)


def get(kind: str | None, *, output: str = "yaml", namespace: str | None = None, control: str | None = None,
        home: str | None = None) -> None:
    """The applied manifests, of one kind and one namespace if given (every namespace if not)."""
    kind = canonical_kind(kind) if kind else None
    answer = control_client(control, home).config(kind)
    resources = [r for r in answer.get("resources", []) if (kind is None or r.get("kind") == kind)
                 and (namespace is None or _namespace(r) == namespace)]
    if output == "json":
        click.echo(json.dumps({"version": answer.get("version"), "resources": resources}, indent=2))
    elif resources:
        click.echo(yaml.safe_dump_all(resources, sort_keys=False), nl=False)
    else:
        click.echo("No resources found" + (f" in {namespace} namespace." if namespace else "."), err=True)


def delete(kind: str, name: str, *, namespace: str = "default", control: str | None = None,
           home: str | None = None) -> None:
    """Delete KIND/NAME in `namespace` (kubectl's -n; default `default`), naming where it is if not there."""
    kind = canonical_kind(kind)
    client = control_client(control, home)
    spaces = sorted(_namespace(r) for r in client.config(kind).get("resources", [])
                    if r.get("kind") == kind and (r.get("metadata") or {}).get("name") == name)
    if spaces and namespace not in spaces:
        raise UserError(f"no {kind} named {name!r} in namespace {namespace!r}; there is one in namespace "
                        f"{', '.join(map(repr, spaces))}: `minimesh delete {kind.lower()} {name} -n {spaces[0]}`")
    answer = client.delete(kind, name, namespace)  # not there at all: the control plane's 404 says so
    where = "" if namespace == "default" else f" (namespace {namespace})"
    click.echo(f"{kind.lower()}/{name} deleted{where}")
    click.echo(f"config version {answer.get('version')}")


def _namespace(manifest: dict) -> str:
    return (manifest.get("metadata") or {}).get("namespace") or "default"
