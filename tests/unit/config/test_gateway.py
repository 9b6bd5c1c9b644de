"""Gateway and VirtualService `gateways:`: what loads, what is refused and where, and that both are valid Istio."""

import pytest
import yaml

from minimesh.config import Gateway, VirtualService, load_manifests
from minimesh.config.gateway import host_matches
from minimesh.errors import ConfigError
from tests.istio_schema import validate_istio

GATEWAY = """\
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: shop-gateway}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
"""

BOUND_VS = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: shop, namespace: foo}
spec:
  hosts: ["*"]
  gateways: [shop-gateway, istio-system/ingress]
  http:
  - route:
    - destination: {host: web}
"""


def test_a_gateway_loads_with_its_servers():
    (gw,) = load_manifests(GATEWAY + '    hosts: ["*", "foo/shop.example.com", "./*.example.org"]\n')
    assert isinstance(gw, Gateway) and gw.selector == {"istio": "ingressgateway"}
    (server,) = gw.servers
    assert (server.port, server.protocol) == (80, "HTTP")
    assert [(h.namespace, h.host) for h in server.hosts] == [("*", "*"), ("foo", "shop.example.com"),
                                                             (".", "*.example.org")]
    assert validate_istio(gw.manifest) == []


def test_gateways_bind_by_namespace_and_name_and_short_hosts_read_in_the_namespace():
    (vs,) = load_manifests(BOUND_VS)
    assert isinstance(vs, VirtualService)
    assert vs.gateways == ("foo/shop-gateway", "istio-system/ingress")
    assert not vs.for_mesh  # bound to gateways only: sidecars do not apply it
    assert vs.hosts == ("*",)
    assert vs.http[0].route[0].destination.host == "web.foo.svc.cluster.local"
    (plain,) = load_manifests(BOUND_VS.replace("  gateways: [shop-gateway, istio-system/ingress]\n", "")
                              .replace('["*"]', "[web]"))
    assert plain.gateways == ("mesh",) and plain.for_mesh  # `mesh` is implied only when `gateways` is absent


@pytest.mark.parametrize("pattern,host,expected", [
    ("*", "anything.at.all", True),
    ("*.example.com", "shop.example.com", True),
    ("*.example.com", "example.com", False),
    ("shop.example.com", "shop.example.com", True),
    ("shop.example.com", "other.example.com", False),
])
def test_host_matching(pattern, host, expected):
    assert host_matches(pattern, host) is expected


HTTPS_GATEWAY = GATEWAY.replace("number: 80, name: http, protocol: HTTP", "number: 443, name: https, protocol: HTTPS")

REFUSED = {
    "short-name": (GATEWAY + "    hosts: [pricing]\n", 8, "spec.servers[0].hosts[0]", "short name 'pricing' is not allowed"),
    "tls": (GATEWAY + '    hosts: ["*"]\n    tls: {mode: SIMPLE, credentialName: shop-cert}\n', 9,
            "spec.servers[0].tls.credentialName", "takes only 'httpsRedirect'"),
    "https-port": (GATEWAY.replace("number: 80, name: http, protocol: HTTP", "number: 443, name: https, protocol: HTTP")
                   + '    hosts: ["*"]\n', 7, "spec.servers[0].port.protocol", "speaks HTTPS, not HTTP"),
    "other-port": (GATEWAY.replace("number: 80,", "number: 8443,") + '    hosts: ["*"]\n', 7,
                   "spec.servers[0].port.number", "ports 80 (HTTP) and 443 (HTTPS)"),
    "https-without-tls": (HTTPS_GATEWAY + '    hosts: ["*"]\n', 7, "spec.servers[0].tls", "needs 'tls'"),
    "passthrough": (HTTPS_GATEWAY + '    hosts: ["*"]\n    tls: {credentialName: c}\n', 9,
                    "spec.servers[0].tls.mode", "PASSTHROUGH"),
    "optional-mutual": (HTTPS_GATEWAY + '    hosts: ["*"]\n    tls: {mode: OPTIONAL_MUTUAL, credentialName: c}\n', 9,
                        "spec.servers[0].tls.mode", "mode OPTIONAL_MUTUAL is not supported by minimesh: Istio would ask"),
    "mutual-without-credential": (HTTPS_GATEWAY + '    hosts: ["*"]\n    tls: {mode: MUTUAL}\n', 9,
                                  "spec.servers[0].tls.credentialName", "and ca.crt"),
    "istio-mutual": (HTTPS_GATEWAY + '    hosts: ["*"]\n    tls: {mode: ISTIO_MUTUAL}\n', 9,
                     "spec.servers[0].tls.mode", "the mesh's own mTLS certificates"),
    "cert-files": (HTTPS_GATEWAY + '    hosts: ["*"]\n    tls: {mode: SIMPLE, serverCertificate: /etc/c.pem}\n', 9,
                   "spec.servers[0].tls.serverCertificate", "use credentialName"),
    "min-version": (HTTPS_GATEWAY + '    hosts: ["*"]\n    tls: {mode: SIMPLE, credentialName: c, '
                    'minProtocolVersion: TLSV1_3}\n', 9, "spec.servers[0].tls.minProtocolVersion",
                    "not supported by minimesh"),
    "tcp": (GATEWAY.replace("protocol: HTTP", "protocol: TCP") + '    hosts: ["*"]\n', 7,
            "spec.servers[0].port.protocol", "not supported by minimesh"),
    "no-servers": (GATEWAY.split("  servers:")[0] + "  servers: []\n", 6, "spec.servers", "at least one server"),
    "wildcard-host-in-mesh": (BOUND_VS.replace("  gateways: [shop-gateway, istio-system/ingress]\n", ""), 5,
                              "spec.hosts[0]", "wildcard host"),
}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_refused_with_file_line_and_field(name):
    text, line, field, message = REFUSED[name]
    with pytest.raises(ConfigError) as caught:
        load_manifests(text, "gw.yaml")
    assert (caught.value.line, caught.value.field) == (line, field)
    assert message in caught.value.message
