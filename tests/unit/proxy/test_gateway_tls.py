"""Which Gateway server's certificate a ClientHello gets (SNI), and which routes apply on the HTTPS port."""

import pytest
import yaml

from minimesh.config import load_manifests
from minimesh.proxy.gateway_tls import choose_server, tls_servers
from minimesh.proxy.ingress import Ingress
from tests.support.certs import learner_certificate, tls_secret
from tests.unit.config.test_gateway import GATEWAY

_, CERT, KEY = learner_certificate(["shop.example.com"])

CONFIG = GATEWAY + """\
    hosts: ["*"]
    tls: {httpsRedirect: true}
  - port: {number: 443, name: shop, protocol: HTTPS}
    hosts: [shop.example.com]
    tls: {mode: SIMPLE, credentialName: shop-credential}
  - port: {number: 443, name: any, protocol: HTTPS}
    hosts: ["*.example.com"]
    tls: {mode: SIMPLE, credentialName: wildcard-credential}
  - port: {number: 443, name: missing, protocol: HTTPS}
    hosts: [admin.example.com]
    tls: {mode: SIMPLE, credentialName: not-applied}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: shop}
spec:
  hosts: [shop.example.com, api.example.com]
  gateways: [shop-gateway]
  http:
  - route: [{destination: {host: web}}]
"""
LABELS = {"istio": "ingressgateway", "app": "gateway"}


@pytest.fixture(scope="module")
def resources():
    secrets = [tls_secret(n, CERT, KEY) for n in ("shop-credential", "wildcard-credential")]
    return load_manifests(CONFIG + "---\n" + "---\n".join(yaml.safe_dump(s) for s in secrets))


@pytest.mark.parametrize("sni,server", [
    ("shop.example.com", "shop.example.com"),   # the exact name beats *.example.com
    ("SHOP.example.com", "shop.example.com"),   # names are case-insensitive
    ("api.example.com", "*.example.com"),
    ("admin.example.com", "*.example.com"),     # its own server's Secret is missing: that filter chain is left out
    ("shop.example.org", None),            # nothing serves it: the handshake fails
    (None, None),                          # no SNI and no '*' server
])
def test_the_sni_chooses_the_most_specific_server_with_a_certificate(resources, sni, server):
    chosen = choose_server(tls_servers(resources, LABELS), sni)
    assert (chosen.hosts[0].host if chosen else None) == server


def test_a_gateway_selecting_other_workloads_gives_no_tls_servers(resources):
    assert tls_servers(resources, {"app": "web"}) == []


def test_over_tls_only_the_chosen_servers_hosts_route(resources):
    ingress = Ingress(resources, LABELS, "istio-system")
    shop = choose_server(tls_servers(resources, LABELS), "shop.example.com")
    assert ingress.route("shop.example.com", 443, shop).virtual_service.name == "shop"
    # api.example.com is bound, but through the *.example.com server, not the one this connection got: 404.
    refused = ingress.route("api.example.com", 443, shop)
    assert refused.virtual_service is None and "on port 443" in refused.no_route
    # On port 80 the HTTP server has httpsRedirect: the route is found, and the answer is a 301.
    plain = ingress.route("shop.example.com", 80)
    assert plain.virtual_service.name == "shop" and plain.https_redirect
    assert not ingress.route("shop.example.com", 443, shop).https_redirect
