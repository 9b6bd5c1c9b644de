"""ServiceEntry and Sidecar, parsed: what minimesh accepts is valid Istio, and
what it refuses names the file, line and field, with what Istio would do.

(Kept apart from cases.py, which the VirtualService/DestinationRule work
grows; the same `# <-` convention marks the line an error must name.)
"""

import pytest
import yaml

from minimesh.config import load_manifests
from minimesh.errors import ConfigError, EgressBlocked
from minimesh.proxy.outbound.egress import decide, sidecar_for
from minimesh.proxy.snapshot import parse_snapshot
from tests.istio_schema import validate_istio

SE = """\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: api
spec:
  hosts: [api.example.com]
"""
PORT = "  ports: [{number: 80, name: http, protocol: HTTP}]\n"
DR = """\
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: api
spec:
  host: api.example.com
  trafficPolicy:
"""
SC = """\
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata:
  name: default
  namespace: istio-system
spec:
"""

ACCEPTED = {
    "se-none": SE + PORT,
    "se-dns": SE + PORT + "  resolution: DNS\n  location: MESH_EXTERNAL\n",
    "se-dns-endpoints": SE + """\
  ports: [{number: 80, name: http, protocol: HTTP, targetPort: 8080}]
  resolution: DNS
  endpoints: [{address: eu.api.example.com}, {address: us.api.example.com, ports: {http: 9090}}]
""",
    "se-static": SE + PORT + """\
  resolution: STATIC
  location: MESH_INTERNAL
  endpoints:
  - address: 10.0.0.1
    labels: {version: v1}
""",
    "dr-tls-simple": DR + "    tls: {mode: SIMPLE, caCertificates: /etc/ca.pem, sni: api.example.com}\n",
    "dr-tls-mutual": DR + "    tls: {mode: MUTUAL, clientCertificate: /c.pem, privateKey: /k.pem, "
                          "subjectAltNames: [api.example.com]}\n",
    "dr-tls-port-level": DR + "    portLevelSettings:\n    - port: {number: 80}\n      tls: {mode: SIMPLE}\n",
    "dr-tls-istio": DR + "    tls: {mode: ISTIO_MUTUAL, subjectAltNames: ['spiffe://cluster.local/ns/a/sa/b']}\n",
    "sidecar-registry-only": SC + "  outboundTrafficPolicy: {mode: REGISTRY_ONLY}\n",
    "sidecar-egress": SC + """\
  workloadSelector: {labels: {app: web}}
  egress:
  - hosts: ["./*", "istio-system/*", "*/api.example.com"]
  outboundTrafficPolicy: {mode: ALLOW_ANY}
""",
}

# name -> (text, field, message fragment, does Istio's CRD schema accept it? None: not checkable here)
REJECTED = {
    "se-addresses": (SE + PORT + "  addresses: [10.0.0.0/24]  # <-\n", "spec.addresses",
                     "never a destination IP", True),
    "se-wildcard": (SE.replace("[api.example.com]", "['*.example.com']  # <-") + PORT, "spec.hosts[0]",
                    "wildcard host", True),
    "se-two-ports": (SE + "  ports:  # <-\n  - {number: 80, name: http}\n  - {number: 8080, name: alt}\n",
                     "spec.ports", "one ServiceEntry per port", True),
    "se-https": (SE + "  ports:\n  - {number: 443, name: https, protocol: HTTPS}  # <-\n", "spec.ports[0].protocol",
                 "HTTP/1.1 requests only", True),
    "se-static-name": (SE + PORT + "  resolution: STATIC\n  endpoints:\n  - address: eu.example.com  # <-\n",
                       "spec.endpoints[0].address", "needs an IP address", True),
    "se-none-endpoints": (SE + PORT + "  endpoints:  # <-\n  - address: 10.0.0.1\n", "spec.endpoints",
                          "takes no endpoints", None),  # a CEL rule our validator does not run
    "se-round-robin": (SE + PORT + "  resolution: DNS_ROUND_ROBIN  # <-\n", "spec.resolution",
                       "not supported by minimesh", True),
    "se-weight": (SE + PORT + "  resolution: STATIC\n  endpoints:\n  - address: 10.0.0.1\n    weight: 3  # <-\n",
                  "spec.endpoints[0].weight", "in proportion to the weight", True),
    "se-typo": (SE + PORT + "  resolutoin: DNS  # <-\n", "spec.resolutoin", "did you mean 'resolution'", False),
    "tls-credential-name": (DR + "    tls:\n      mode: SIMPLE\n      credentialName: api-ca  # <-\n",
                            "spec.trafficPolicy.tls.credentialName", "Kubernetes secret", True),
    "tls-mutual-no-cert": (DR + "    tls:\n      mode: MUTUAL  # <-\n", "spec.trafficPolicy.tls.mode",
                           "needs clientCertificate and privateKey", None),
    "tls-istio-sni": (DR + "    tls:\n      mode: ISTIO_MUTUAL\n      sni: a.example.com  # <-\n",
                      "spec.trafficPolicy.tls.sni", "does nothing with mode ISTIO_MUTUAL", True),
    "tls-typo": (DR + "    tls:\n      mode: SIMPLE\n      caCertificate: /ca.pem  # <-\n",
                 "spec.trafficPolicy.tls.caCertificate", "did you mean 'caCertificates'", False),
    "sidecar-ingress": (SC + "  ingress:  # <-\n  - port: {number: 9080, protocol: HTTP, name: http}\n"
                        "    defaultEndpoint: 127.0.0.1:8080\n", "spec.ingress", "inbound listeners", True),
    "sidecar-egress-proxy": (SC + "  outboundTrafficPolicy:\n    mode: ALLOW_ANY\n    egressProxy:  # <-\n"
                             "      host: egress.example.com\n", "spec.outboundTrafficPolicy.egressProxy",
                             "egress proxy", True),
    "sidecar-bad-host": (SC + "  egress:\n  - hosts:\n    - api.example.com  # <-\n", "spec.egress[0].hosts[0]",
                         "must be 'namespace/host'", True),
    "sidecar-bad-mode": (SC + "  outboundTrafficPolicy: {mode: BLOCK}  # <-\n", "spec.outboundTrafficPolicy.mode",
                         "unknown value 'BLOCK'", False),
}


def _line(text: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if "# <-" in line)


@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_accepted_manifests_are_istio_and_load(name):
    assert validate_istio(yaml.safe_load(ACCEPTED[name])) == []
    [resource] = load_manifests(ACCEPTED[name], f"{name}.yaml")
    assert resource.kind in ("ServiceEntry", "Sidecar", "DestinationRule")


@pytest.mark.parametrize("name", sorted(REJECTED))
def test_refused_with_file_line_field_and_what_istio_does(name):
    text, field, fragment, crd_accepts = REJECTED[name]
    with pytest.raises(ConfigError) as caught:
        load_manifests(text, f"{name}.yaml")
    error = caught.value
    assert (error.source, error.line, error.field) == (f"{name}.yaml", _line(text), field), str(error)
    assert fragment in error.message
    # "Istio has it, minimesh does not" must really be Istio; a typo must be refused there too.
    if crd_accepts is not None:
        assert (validate_istio(yaml.safe_load(text)) == []) is crd_accepts, validate_istio(yaml.safe_load(text))


def _config(text: str, services=("catalog",)):
    resources = load_manifests(text, "t.yaml")
    return parse_snapshot({"version": "1", "resources": [r.manifest for r in resources],
                           "services": {s: {"endpoints": [{"instance": f"{s}-1", "address": "127.0.0.1:1"}]}
                                        for s in services}})


@pytest.mark.parametrize("text, host, endpoints", [
    (ACCEPTED["se-none"], "api.example.com", ["api.example.com:80"]),
    (ACCEPTED["se-dns-endpoints"], "api.example.com", ["eu.api.example.com:8080", "us.api.example.com:9090"]),
    (ACCEPTED["se-static"], "api.example.com", ["10.0.0.1:80"]),
])
def test_a_service_entry_becomes_a_cluster_outside_the_mesh_endpoints(text, host, endpoints):
    config = _config(text)
    assert [e.address for e in config.cluster(host, None).endpoints] == endpoints
    assert all(config.endpoint_at(address) is None for address in endpoints)  # never auto-mTLS


def test_which_sidecar_applies_own_namespace_selector_first_then_root():
    text = "\n---\n".join([
        SC + "  outboundTrafficPolicy: {mode: REGISTRY_ONLY}\n",
        SC.replace("name: default", "name: web").replace("istio-system", "default")
        + "  workloadSelector: {labels: {app: web}}\n  outboundTrafficPolicy: {mode: ALLOW_ANY}\n",
    ])
    resources = load_manifests(text, "t.yaml")
    assert sidecar_for(resources, {"app": "web"}).name == "web"
    assert sidecar_for(resources, {"app": "catalog"}).namespace == "istio-system"
    assert sidecar_for(resources[1:], {"app": "catalog"}) is None


@pytest.mark.parametrize("authority, policy, expected", [
    ("api.example.com", "REGISTRY_ONLY", "api.example.com"),
    ("api.example.com:80", "REGISTRY_ONLY", "api.example.com"),
    ("catalog", "REGISTRY_ONLY", "catalog"),
    ("api.example.com:8080", "ALLOW_ANY", None),  # not the entry's port: passed through
    ("api.example.com:8080", "REGISTRY_ONLY", "BH"),
    ("other.example.com", "REGISTRY_ONLY", "BH"),
    ("other.example.com", "ALLOW_ANY", None),
])
def test_egress_decision(authority, policy, expected):
    config = _config(ACCEPTED["se-none"] + "---\n" + SC + f"  outboundTrafficPolicy: {{mode: {policy}}}\n")
    assert _decided(config, authority, sidecar_for(config.resources, {"app": "web"})) == expected


def _decided(config, authority: str, sidecar) -> str | None:
    """The registry host a request goes to, None (passed through), or "BH" (refused: 502 BlackHoleCluster)."""
    try:
        return decide(config, authority, sidecar).service
    except EgressBlocked as e:
        assert e.status == 502
        return e.flag


# --- egress hosts: matched against hostnames as written, as on Istio -------------------------------
# pilot/pkg/model/sidecar.go (hostClassification.Matches): an exact lookup of the service's hostname,
# or a '*.suffix' wildcard. A Kubernetes service's hostname is its FQDN; a ServiceEntry's is its host as
# written. So 'default/catalog' imports no Kubernetes service: accepted, and warned about at apply.

SC_DEFAULT = SC.replace("istio-system", "default")


def _egress_sidecar(*hosts: str, mode: str = "REGISTRY_ONLY") -> str:
    listed = "".join(f"    - {h!r}\n" for h in hosts)
    return SC_DEFAULT + f"  egress:\n  - hosts:\n{listed}  outboundTrafficPolicy: {{mode: {mode}}}\n"


@pytest.mark.parametrize("host, fix", [
    ("default/catalog", "'default/catalog.default.svc.cluster.local'"),
    ("./catalog", "'./catalog.default.svc.cluster.local'"),
    ("*/catalog", "'*/catalog.default.svc.cluster.local'"),
    ("foo/catalog", "'foo/catalog.foo.svc.cluster.local'"),
    ("default/catalog.default.svc", "'default/catalog.default.svc.cluster.local'"),
    ("./*", None),
    ("*/*", None),
    ("default/catalog.default.svc.cluster.local", None),
    ("*/api.example.com", None),
    ("*/*.example.com", None),
])
def test_a_short_egress_host_is_accepted_and_warned_with_the_fqdn_to_write(host, fix):
    [sidecar] = load_manifests(_egress_sidecar("./*", host), "sc.yaml")
    if fix is None:
        assert sidecar.warnings == ()
        return
    # One line: file:line: field: what Istio does, and the fix. Line 10 holds the second host of the list.
    [warning] = sidecar.warnings
    assert "\n" not in warning
    assert warning.startswith(f"sc.yaml:10: spec.egress[0].hosts[1]: {host!r} is not an FQDN"), warning
    assert "imports no Kubernetes service" in warning and warning.endswith(f"write {fix}"), warning
    assert validate_istio(yaml.safe_load(_egress_sidecar("./*", host))) == []  # valid Istio: hence a warning


LEGACY = SE.replace("name: api", "name: legacy").replace("[api.example.com]", "[legacy]") + PORT


@pytest.mark.parametrize("hosts, authority, expected", [
    # A mesh service: only its FQDN (or a wildcard covering it) imports it.
    (["default/catalog"], "catalog", "BH"),
    (["./catalog"], "catalog", "BH"),
    (["*/catalog"], "catalog", "BH"),
    (["default/catalog.default.svc.cluster.local"], "catalog", "catalog"),
    (["./catalog.default.svc.cluster.local"], "catalog.default.svc.cluster.local", "catalog"),
    (["*/*.svc.cluster.local"], "catalog", "catalog"),
    (["./*"], "catalog", "catalog"),
    (["istio-system/*"], "catalog", "BH"),
    # A ServiceEntry host is matched as the entry writes it — even a short one, as on Istio.
    (["default/legacy"], "legacy", "legacy"),
    (["default/legacy.default.svc.cluster.local"], "legacy", "BH"),
    (["*/api.example.com"], "api.example.com", "api.example.com"),
    (["*/*.example.com"], "api.example.com", "api.example.com"),
    (["default/catalog"], "api.example.com", "BH"),
])
def test_egress_hosts_match_hostnames_as_written(hosts, authority, expected):
    config = _config("---\n".join([ACCEPTED["se-none"], LEGACY, _egress_sidecar(*hosts)]))
    sidecar = sidecar_for(config.resources, {"app": "web"})
    assert sidecar is not None and sidecar.namespace == "default"
    assert _decided(config, authority, sidecar) == expected
