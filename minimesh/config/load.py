"""From YAML text (or a plain dict) to validated, frozen resources.

This is the one door into the config model: the CLI's `apply`, the control
plane's store and a sidecar reading a snapshot all come through here, so a
manifest is validated exactly once, at load time, and never per request.
Either a whole file loads or nothing does: the first problem raises a
ConfigError naming the file, the line and the field.
"""

import copy
import dataclasses
import os
import re
from collections.abc import Iterable
from typing import Any, Callable

from minimesh.errors import ConfigError

from .destinationrule import parse_destination_rule
from .gateway import parse_gateway
from .fields import At, check_fields, mapping, require, string
from .namespaces import in_namespace, parse_export_to
from .resource import DEFAULT_NAMESPACE, Resource
from .authorization import parse_authorization_policy
from .requestauthentication import parse_request_authentication
from .security import parse_peer_authentication
from .secret import parse_secret
from .serviceentry import parse_service_entry
from .sidecar_resource import parse_sidecar
from .source import read_documents
from .virtualservice import parse_virtual_service

_NETWORKING = ("networking.istio.io", ("v1", "v1beta1", "v1alpha3"))
_SECURITY = ("security.istio.io", ("v1", "v1beta1"))

# kind -> (API group, versions minimesh accepts, spec parser)
KINDS: dict[str, tuple[str, tuple[str, ...], Callable[..., Resource]]] = {
    "VirtualService": (*_NETWORKING, parse_virtual_service),
    "DestinationRule": (*_NETWORKING, parse_destination_rule),
    "Gateway": (*_NETWORKING, parse_gateway),
    "PeerAuthentication": (*_SECURITY, parse_peer_authentication),
    "AuthorizationPolicy": (*_SECURITY, parse_authorization_policy),
    "RequestAuthentication": (*_SECURITY, parse_request_authentication),
    "ServiceEntry": (*_NETWORKING, parse_service_entry),
    "Sidecar": (*_NETWORKING, parse_sidecar),
    # Kubernetes' own: the TLS Secret a Gateway's credentialName names (secret.py); core group, so "v1".
    "Secret": ("", ("v1",), parse_secret),
}
# Kinds with `exportTo`: read here, once, for all of them (namespaces.py).
EXPORTABLE = ("VirtualService", "DestinationRule", "ServiceEntry")
_ISTIO_ONLY_KINDS = (
    "EnvoyFilter", "WorkloadEntry", "WorkloadGroup", "ProxyConfig",
    "Telemetry", "WasmPlugin",
)

# Kubernetes ObjectMeta: what `kubectl get -o yaml` may leave in a manifest.
_METADATA_FIELDS = (
    "name", "namespace", "labels", "annotations", "uid", "resourceVersion", "generation",
    "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "managedFields",
    "finalizers", "ownerReferences", "generateName", "selfLink",
)
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


def load_manifests(text: str, source: str = "<stdin>") -> list[Resource]:
    """Every resource in a multi-document YAML text, or ConfigError for the first problem."""
    resources: list[Resource] = []
    first_line: dict[tuple[str, str, str], int | None] = {}
    for doc in read_documents(text, source):
        at = At(source, doc.lines)
        resource = _parse(doc.value, at)
        if resource.key in first_line:
            raise (at / "metadata" / "name").error(
                f"{resource.kind} '{resource.name}' appears twice in this input "
                f"(first at line {first_line[resource.key]}); keep one"
            )
        first_line[resource.key] = at.line
        resources.append(resource)
    return resources


def load_file(path: str | os.PathLike) -> list[Resource]:
    source = os.fspath(path)
    try:
        with open(source, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise ConfigError(f"cannot read file: {e.strerror}", source=source) from e
    except UnicodeDecodeError as e:
        raise ConfigError("file is not UTF-8 text", source=source) from e
    return load_manifests(text, source)


def load_files(paths: Iterable[str | os.PathLike]) -> list[Resource]:
    return [resource for path in paths for resource in load_file(path)]


def parse_resource(doc: dict, source: str = "<snapshot>") -> Resource:
    """Validate one plain-dict manifest (no line numbers), e.g. from a control-plane snapshot."""
    return _parse(doc, At(source))


def _parse(value: Any, at: At) -> Resource:
    doc = mapping(value, at)
    if not doc:
        raise at.error("empty manifest; expected apiVersion, kind, metadata and spec")
    kind = string(require(doc, "kind", at), at / "kind")
    if kind != "Secret":  # a Secret has no spec: its fields are the document's own (secret.py)
        check_fields(doc, at, ("apiVersion", "kind", "metadata", "spec", "status"))
    if kind not in KINDS:
        what = "is not supported by minimesh" if kind in _ISTIO_ONLY_KINDS else "is not an Istio kind"
        raise (at / "kind").error(f"kind '{kind}' {what} (supported: {', '.join(KINDS)})")
    group, versions, parse_spec = KINDS[kind]
    api_version = string(require(doc, "apiVersion", at), at / "apiVersion")
    accepted = [f"{group}/{v}" if group else v for v in versions]
    if api_version not in accepted:
        raise (at / "apiVersion").error(f"apiVersion '{api_version}' is wrong for {kind}; use {accepted[0]}")
    name, namespace = _parse_metadata(doc.get("metadata"), at / "metadata")
    if kind == "Secret":
        return parse_spec(doc, at, name=name, namespace=namespace, manifest=copy.deepcopy(doc))
    spec = mapping(doc.get("spec"), at / "spec")
    manifest = copy.deepcopy({k: doc[k] for k in ("apiVersion", "kind", "metadata", "spec") if k in doc})
    export_to = ("*",)
    if kind in EXPORTABLE and "exportTo" in spec:
        export_to = parse_export_to(spec["exportTo"], at / "spec" / "exportTo")
        spec = {k: v for k, v in spec.items() if k != "exportTo"}
    resource = parse_spec(spec, at / "spec", name=name, namespace=namespace, manifest=manifest)
    # Short hosts are read in the resource's own namespace (`catalog` in foo: catalog.foo.svc.cluster.local).
    resource = dataclasses.replace(in_namespace(resource), export_to=export_to)
    return dataclasses.replace(resource, warnings=tuple(at.warnings)) if at.warnings else resource


def _parse_metadata(value: Any, at: At) -> tuple[str, str]:
    if value is None:
        raise at.error("'metadata' with a 'name' is required")
    meta = mapping(value, at)
    check_fields(meta, at, _METADATA_FIELDS)
    name = string(require(meta, "name", at), at / "name")
    if not _DNS_SUBDOMAIN.match(name):
        raise (at / "name").error(f"invalid name {name!r}; use lowercase letters, digits, '-' and '.'")
    namespace = string(meta.get("namespace", DEFAULT_NAMESPACE), at / "namespace")
    if not _DNS_LABEL.match(namespace):
        raise (at / "namespace").error(f"invalid namespace {namespace!r}; use lowercase letters, digits and '-' "
                                       "(at most 63)")
    return name, namespace
