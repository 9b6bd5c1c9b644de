"""Which of Istio's CRD fields minimesh enforces and which it refuses, found by asking the loader.

For every field path in the CRD schemas (`../shared/reference/istio-crds.gen.yaml`,
read where it lies, never copied) of every kind minimesh loads, `probe` builds
a minimal manifest that sets that one field (`SKELETONS` fills in what
Istio requires around it) and hands it to `minimesh.config.load_manifests`:

- refused: the loader answers "not supported by minimesh" for that very
  field — the message, with what Istio would do, goes into the table;
- enforced: the loader accepts the field (the manifest loads, or fails only
  on the probe's made-up value, at or under that field);
- unknown: the loader calls a real Istio field a typo ("unknown field") —
  a bug the test reports;
- inconclusive: the probe's manifest failed somewhere else, so the field
  was never reached — a skeleton is missing; the test reports it too.

`render()` writes docs/istio-fields.md from the probes, so the table is
built from what the loader does, not by hand; the test fails when the file
drifts (`python -m tests.istio_fields > docs/istio-fields.md` refreshes it).
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from functools import lru_cache

import yaml

from minimesh.config import load_manifests
from minimesh.config.load import KINDS
from minimesh.errors import ConfigError
from tests.istio_schema import _schemas

# Fields the loader accepts that have, by construction, nothing to act on in minimesh.
NOT_APPLICABLE = {
    "VirtualService": {
        "spec.http[].retries.retryRemoteLocalities": "minimesh runs in one locality, so there is no other to retry in",
    },
}

# What an enforced field means where minimesh differs in setting from a cluster (one port per service, ...).
NOTES = {
    "VirtualService": {
        "spec.http[].route[].weight": "relative, as on Istio: weight / sum; a sum other than 100 is warned at apply",
        "spec.http[].route[].destination.port": "80, the one port of a minimesh service; any other: 503 NC",
        "spec.http[].route[].destination.subset": "undefined: accepted with a warning (IST0101), 503 NC",
        "spec.http[].match[].port": "the port the request's Host names (80 when none)",
        "spec.http[].match[].sourceLabels": "the calling proxy's labels (the gateway's: istio=ingressgateway)",
        "spec.http[].match[].withoutHeaders": "Envoy's inverted match: an absent header does not match (warned)",
        "spec.http[].rewrite.uri": "Envoy's prefix_rewrite of the matched prefix (no uri match: '/', warned)",
    },
    "Sidecar": {
        "spec.egress[].hosts": "matched against hostnames as written, as on Istio: a short name "
                               "('default/catalog') imports no Kubernetes service (warned; write the FQDN)",
    },
    "AuthorizationPolicy": {
        "spec.rules[].to[].operation.ports": "workload ports, as Istio: 8080 (every app's container port); at the "
                                             "gateway 8080 (HTTP) and 8443 (HTTPS), its pod's ports",
    },
    "PeerAuthentication": {
        "spec.portLevelMtls": "port 8080, every app's container port; other ports refused; needs a selector",
    },
    "Gateway": {
        "spec.servers[].port.number": "80 (HTTP) and 443 (HTTPS), the ports of Istio's ingress gateway Service",
        "spec.servers[].port.protocol": "HTTP on 80, HTTPS on 443 (TLS terminated at the gateway)",
        "spec.servers[].tls.mode": "SIMPLE: TLS terminated with the credentialName Secret, chosen by SNI; MUTUAL: "
                                   "also a client certificate from the Secret's ca.crt",
        "spec.servers[].tls.credentialName": "a kubernetes.io/tls Secret in istio-system (missing: IST0161, "
                                             "handshakes fail)",
        "spec.servers[].tls.httpsRedirect": "an HTTP server answers 301 to https, as Envoy's require_tls",
        "spec.servers[].hosts": "'*', '*.example.com', FQDNs, each optionally NAMESPACE/; short names refused, as Istio",
    },
    "DestinationRule": {
        "spec.trafficPolicy.portLevelSettings[].port": "80, the one port of a minimesh service; others refused",
        "spec.trafficPolicy.tls.mode": "DISABLE, SIMPLE, MUTUAL, ISTIO_MUTUAL (origination, proxy/outbound/origination.py)",
        "spec.trafficPolicy.connectionPool.http.idleTimeout": "the pooled connections' idle timeout (at least 1ms, "
                                                              "as the CRD); set, it overrides tcp.idleTimeout",
        "spec.trafficPolicy.connectionPool.tcp.idleTimeout": "the pooled connections' idle timeout when "
                                                             "http.idleTimeout is unset, as Istio; 0s: none",
    },
    "ServiceEntry": {
        "spec.ports": "one port per entry (HTTP); more are refused",
        "spec.ports[].protocol": "HTTP; HTTPS, TLS, TCP, GRPC, HTTP2 ... refused (no CONNECT tunnels)",
        "spec.resolution": "NONE and DNS resolve the host at connect time; STATIC uses the endpoints' IPs",
    },
}

# The least each kind needs to load, and the least each list item needs, so a probe reaches its field.
BASES = {
    "VirtualService": {"hosts": ["pricing"], "http": [{"route": [{"destination": {"host": "pricing"}}]}]},
    "DestinationRule": {"host": "pricing"},
    "Gateway": {"servers": [{"port": {"number": 80, "protocol": "HTTP"}, "hosts": ["*"]}]},
    "ServiceEntry": {"hosts": ["api.example.com"], "resolution": "DNS",
                     "ports": [{"number": 80, "name": "http", "protocol": "HTTP"}]},
}
SKELETONS = {
    "spec.http[]": {"route": [{"destination": {"host": "pricing"}}]},
    "spec.http[].route[]": {"destination": {"host": "pricing"}},
    "spec.http[].mirrors[]": {"destination": {"host": "pricing"}},
    "spec.subsets[]": {"name": "v1"},
    "spec.servers[]": {"port": {"number": 80, "protocol": "HTTP"}, "hosts": ["*"]},
    "spec.trafficPolicy.portLevelSettings[]": {"port": {"number": 80}},
    "spec.subsets[].trafficPolicy.portLevelSettings[]": {"port": {"number": 80}},
    "spec.jwtRules[]": {"issuer": "https://issuer.test", "jwksUri": "https://issuer.test/jwks"},
    "spec.ports[]": {"number": 80, "name": "http"},
    "spec.endpoints[]": {"address": "eu.api.example.com"},
    "spec.egress[]": {"hosts": ["./*"]},
    "spec.rules[].when[]": {"key": "request.headers[x]", "values": ["v"]},
    "spec.jwtRules[].fromHeaders[]": {"name": "x-token"},
    "spec.jwtRules[].outputClaimToHeaders[]": {"header": "x-sub", "claim": "sub"},
}
# Blocks (by the end of their path) that need a sibling before any field of theirs is read; the
# sibling is left out when the probed field is one of `exclusive` (Istio's oneOf).
_PARENTS = (
    ("fault.abort", {"httpStatus": 503}, ()),
    ("servers[].port", {"number": 80, "protocol": "HTTP"}, ()),
    ("fault.delay", {"fixedDelay": "1s"}, ()),
    ("directResponse", {"status": 200}, ()),
    ("mirror", {"host": "pricing"}, ()),
    ("uriRegexRewrite", {"match": "^/a", "rewrite": "/b"}, ()),
    ("consistentHash.httpCookie", {"name": "c"}, ()),
    ("loadBalancer.consistentHash", {"httpHeaderName": "x"},
     ("httpHeaderName", "httpCookie", "useSourceIp", "httpQueryParameterName")),
    ("loadBalancer.warmup", {"duration": "10s"}, ()),
    # a tls block's fields act with the mode that uses them (MUTUAL: every file is read)
    ("trafficPolicy.tls", {"mode": "MUTUAL", "clientCertificate": "/c.pem", "privateKey": "/k.pem"}, ("mode",)),
    ("servers[].tls", {"mode": "SIMPLE", "credentialName": "shop-credential"}, ()),  # a Gateway's HTTPS server
    ("].tls", {"mode": "MUTUAL", "clientCertificate": "/c.pem", "privateKey": "/k.pem"}, ("mode",)),
)
# A Gateway server's tls is read on an HTTPS server (port 443).
_HTTPS_SERVER = {"port": {"number": 443, "protocol": "HTTPS"}, "hosts": ["shop.example.com"]}
# What spec.http[0] must be for a probe under these fields (a redirect has no route, ...).
_HTTP_ROUTE_FOR = {
    "spec.http[].redirect": {},
    "spec.http[].directResponse": {},
    "spec.http[].mirrorPercentage": {"route": [{"destination": {"host": "pricing"}}], "mirror": {"host": "pricing"}},
}


@dataclass(frozen=True)
class Probe:
    path: str  # "spec.http[].corsPolicy.maxAge"
    verdict: str  # enforced | refused | n/a | unknown | inconclusive
    note: str = ""


def _kind_schemas() -> dict[str, tuple[str, dict]]:
    """kind -> (apiVersion, spec schema): the newest version the CRD file has for each kind."""
    out = {}
    for (api, kind), schema in sorted(_schemas().items(), key=lambda item: _rank(item[0][0])):
        out[kind] = (api, schema["properties"]["spec"])
    return out


def _rank(api: str) -> int:
    version = api.rsplit("/", 1)[1]
    return {"v1": 3, "v1beta1": 2}.get(version, 1)


def field_paths(schema: dict, prefix: str = "spec") -> list[tuple[str, dict]]:
    """Every (path, schema) under `schema`, depth first; list items are written `[]`, maps are leaves."""
    out = []
    for key, sub in sorted(schema.get("properties", {}).items()):
        path = f"{prefix}.{key}"
        out.append((path, sub))
        if sub.get("type") == "array" and "properties" in sub.get("items", {}):
            out += field_paths(sub["items"], path + "[]")
        elif "properties" in sub:
            out += field_paths(sub, path)
    return out


def _value(schema: dict):
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "array":
        return [] if "properties" in schema.get("items", {}) else [_value(schema.get("items", {}))]
    if kind == "object":
        extra = schema.get("additionalProperties")
        return {"k": _value(extra)} if isinstance(extra, dict) and "properties" not in extra else {}
    return {"integer": 1, "number": 1, "boolean": True}.get(kind, "x")


def _parent_defaults(walked: str, child: str | None) -> dict:
    for suffix, defaults, exclusive in _PARENTS:
        if walked.endswith(suffix) and child not in exclusive:
            return copy.deepcopy(defaults)
    return {}


def _manifest(kind: str, api: str, path: str, schema: dict) -> dict:
    spec = copy.deepcopy(BASES.get(kind, {}))
    for prefix, item in _HTTP_ROUTE_FOR.items():
        if kind == "VirtualService" and (path == prefix or path.startswith(prefix + ".")):
            spec["http"] = [copy.deepcopy(item)]
    if kind == "Gateway" and path.startswith("spec.servers[].tls"):
        spec["servers"] = [copy.deepcopy(_HTTPS_SERVER)]
    node, walked = spec, "spec"
    parts = path.split(".")[1:]
    for i, part in enumerate(parts):
        key, is_list = part.removesuffix("[]"), part.endswith("[]")
        walked += f".{key}"
        last = i == len(parts) - 1
        if last:
            node[key] = _value(schema)
            if is_list or (schema.get("type") == "array" and "properties" in schema.get("items", {})):
                node[key] = [copy.deepcopy(SKELETONS.get(walked + "[]", {}))]
            elif "properties" in schema and not node[key]:
                node[key] = _parent_defaults(walked, None)
            break
        if is_list:
            walked += "[]"
            items = node.setdefault(key, [])
            if not items:
                items.append(copy.deepcopy(SKELETONS.get(walked, {})))
            node = items[0]
        else:
            child = parts[i + 1].removesuffix("[]")
            node = node.setdefault(key, _parent_defaults(walked, child))
    return {"apiVersion": api, "kind": kind, "metadata": {"name": "probe"}, "spec": spec}


def _dotted(path: str) -> re.Pattern:
    """'spec.http[].route' as a regex over ConfigError fields ('spec.http[0].route')."""
    return re.compile(re.escape(path).replace(r"\[\]", r"\[\d+\]") + r"(?=$|[.\[])")


def probe(kind: str, api: str, path: str, schema: dict) -> Probe:
    """The loader's verdict on one field; for an enum, on each of its values (refused ones are noted)."""
    if "enum" not in schema:
        return _probe_one(kind, api, path, schema)
    verdicts = [(value, _probe_one(kind, api, path, {**schema, "enum": [value]})) for value in schema["enum"]]
    refused = [(value, p) for value, p in verdicts if p.verdict == "refused"]
    if len(refused) == len(verdicts):
        return refused[0][1]
    if not refused:
        return verdicts[0][1]
    best = next(p for _, p in verdicts if p.verdict != "refused")
    note = "; ".join([*([best.note] if best.note else []), *(f"value {value} refused: {p.note}" for value, p in refused)])
    return Probe(path, best.verdict, note)


def _probe_one(kind: str, api: str, path: str, schema: dict) -> Probe:
    manifest = _manifest(kind, api, path, schema)
    try:
        load_manifests(yaml.safe_dump(manifest), "probe.yaml")
        error = None
    except ConfigError as e:
        error = e
    na = NOT_APPLICABLE.get(kind, {}).get(path)
    note = na or NOTES.get(kind, {}).get(path, "")
    if error is None:
        return Probe(path, "n/a" if na else "enforced", note)
    at_field = _dotted(path).match(error.field or "")
    exactly = at_field is not None and at_field.end() == len(error.field)
    if exactly and ("not supported" in error.message or "does not support" in error.message):
        return Probe(path, "refused", _why(error.message))
    if exactly and error.message.startswith("unknown field"):
        return Probe(path, "unknown", error.message)
    if at_field is not None:
        return Probe(path, "n/a" if na else "enforced", note)
    return Probe(path, "inconclusive", str(error))


def _why(message: str) -> str:
    return re.sub(r" \(supported: [^)]*\)", "", message)


@lru_cache(maxsize=1)
def probes() -> dict[str, tuple[str, list[Probe]]]:
    """kind -> (apiVersion, its probes), for every kind minimesh loads; a refused field's children are left out."""
    out = {}
    for kind, (api, spec) in sorted(_kind_schemas().items()):
        if kind not in KINDS:
            continue
        found: list[Probe] = []
        refused: list[str] = []
        for path, schema in field_paths(spec):
            if any(path.startswith(r + ".") or path.startswith(r + "[]") for r in refused):
                continue
            p = probe(kind, api, path, schema)
            if p.verdict == "refused":
                refused.append(path)
            found.append(p)
        out[kind] = (api, found)
    return out


def render() -> str:
    kinds = _kind_schemas()
    lines = [
        "# Istio's fields in minimesh",
        "",
        "Generated by `python -m tests.istio_fields > docs/istio-fields.md` from Istio's CRD schemas",
        "(`../shared/reference/istio-crds.gen.yaml`) and minimesh's own loader: every field of every",
        "kind is put in a manifest and loaded. **enforced**: accepted, and behaves as on Istio;",
        "**refused**: `minimesh apply` refuses it with file:line:field and the sentence shown (the",
        "fields under a refused one are not listed); **n/a**: accepted, with nothing to act on here.",
        "tests/unit/config/test_istio_fields_table.py fails when this file drifts from the loader.",
        "",
        "## Kinds",
        "",
        "| kind | apiVersion | minimesh |",
        "|---|---|---|",
    ]
    for kind, (api, _) in sorted(kinds.items()):
        lines.append(f"| {kind} | {api} | {'loaded (fields below)' if kind in KINDS else 'refused'} |")
    # Not an Istio kind, so not in the CRDs: the one Kubernetes kind minimesh loads (config/secret.py).
    lines.append("| Secret | v1 | loaded: type kubernetes.io/tls (or Opaque) with data tls.crt, tls.key and, "
                 "for MUTUAL, ca.crt — a Gateway's credentialName, read from istio-system; other types refused |")
    for kind, (api, found) in probes().items():
        lines += ["", f"## {kind}", "", "| field | minimesh | note |", "|---|---|---|"]
        for p in found:
            note = p.note.replace("|", "\\|")
            lines.append(f"| `{p.path}` | {p.verdict} | {note} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render(), end="")
