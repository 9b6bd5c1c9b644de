"""The TLS Secret a Gateway's credentialName names: what loads, what is refused in one line, what is shown."""

import base64
import datetime

import pytest
import yaml

from minimesh.config import analyze, load_manifests
from minimesh.config.secret import REDACTED, Secret, redacted
from minimesh.errors import ConfigError
from tests.support.certs import learner_certificate, tls_secret
from tests.unit.config.test_gateway import HTTPS_GATEWAY

CA, CERT, KEY = learner_certificate(["shop.example.com", "www.example.com"])
_, OTHER_CERT, OTHER_KEY = learner_certificate(["shop.example.com"])

GATEWAY = HTTPS_GATEWAY + """\
    hosts: [shop.example.com]
    tls: {mode: SIMPLE, credentialName: shop-credential}
"""


def as_yaml(doc: dict) -> str:
    return yaml.safe_dump(doc, sort_keys=False)


def test_a_kubectl_tls_secret_loads_with_its_fingerprint_and_names():
    (secret,) = load_manifests(as_yaml(tls_secret("shop-credential", CERT, KEY)))
    assert isinstance(secret, Secret) and secret.key == ("Secret", "istio-system", "shop-credential")
    assert secret.cert_pem == CERT and secret.key_pem == KEY
    assert secret.dns_names == ("shop.example.com", "www.example.com")
    assert secret.fingerprint.startswith("SHA256:") and len(secret.fingerprint.split(":")) == 33


def test_a_generic_secret_with_a_ca_loads_for_mutual_tls():
    doc = {**tls_secret("shop-credential", CERT, KEY), "type": "Opaque"}
    doc["data"]["ca.crt"] = base64.b64encode(CA).decode()
    (secret,) = load_manifests(as_yaml(doc))
    assert secret.ca_pem == CA


def test_what_minimesh_shows_of_a_secret_is_never_its_key():
    doc = tls_secret("shop-credential", CERT, KEY)
    shown = redacted(doc)
    assert shown["data"] == {"tls.crt": REDACTED, "tls.key": REDACTED}
    assert shown["fingerprint"]["dnsNames"] == ["shop.example.com", "www.example.com"]
    assert doc["data"]["tls.key"] not in str(shown)
    assert redacted({"kind": "Gateway", "apiVersion": "networking.istio.io/v1"})["kind"] == "Gateway"


def _with(**changes) -> dict:
    doc = tls_secret("shop-credential", CERT, KEY)
    for key, value in changes.items():
        if key in ("tls.crt", "tls.key", "ca.crt"):
            doc["data"][key] = value
        else:
            doc[key] = value
    return doc


EXPIRED = learner_certificate(["shop.example.com"], days=1,
                              not_before=datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc))
REFUSED = {
    "docker-config": (_with(type="kubernetes.io/dockerconfigjson"), "type", "kubernetes.io/tls"),
    "not-a-ca": (_with(**{"ca.crt": base64.b64encode(b"x").decode()}), "data.ca.crt", "is not a PEM certificate"),
    "not-base64": (_with(**{"tls.key": "-----BEGIN"}), "data.tls.key", "is not base64"),
    "not-a-certificate": (_with(**{"tls.crt": base64.b64encode(b"hello").decode()}), "data.tls.crt",
                          "is not a PEM certificate"),
    "key-of-another-cert": (_with(**{"tls.key": base64.b64encode(OTHER_KEY).decode()}), "data.tls.key",
                            "not the certificate's"),
    "expired": (tls_secret("shop-credential", EXPIRED[1], EXPIRED[2]), "data.tls.crt", "not now"),
    "no-key": ({**_with(), "data": {"tls.crt": base64.b64encode(CERT).decode()}}, "data.tls.key", "required"),
    "stringData": ({**_with(), "stringData": {"tls.crt": "x"}}, "stringData", "under 'data'"),
    "wrong-api": ({**_with(), "apiVersion": "core/v1"}, "apiVersion", "use v1"),
}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_a_bad_secret_is_refused_in_one_line_naming_the_field(name):
    doc, field, message = REFUSED[name]
    with pytest.raises(ConfigError) as caught:
        load_manifests(as_yaml(doc), "secret.yaml")
    assert caught.value.field == field and message in caught.value.message, str(caught.value)
    assert "\n" not in str(caught.value) and str(caught.value).startswith("secret.yaml:")


def test_a_gateway_naming_a_missing_secret_is_ist0161_and_the_secret_silences_it():
    (gateway,) = load_manifests(GATEWAY)
    def ist0161(resources):
        return [m for m in analyze(resources) if m.code == "IST0161"]

    (message,) = ist0161([gateway])
    assert message.code == "IST0161" and message.level == "Error"
    assert "no TLS Secret 'shop-credential' in namespace istio-system" in message.text
    assert message.istioctl().startswith("Error [IST0161] (Gateway shop-gateway.default)")
    secret = load_manifests(as_yaml(tls_secret("shop-credential", CERT, KEY)))
    assert ist0161([gateway, *secret]) == []
    # In another namespace it does not count: the gateway reads its own (istio-system).
    elsewhere = load_manifests(as_yaml(tls_secret("shop-credential", CERT, KEY, namespace="default")))
    assert len(ist0161([gateway, *elsewhere])) == 1
