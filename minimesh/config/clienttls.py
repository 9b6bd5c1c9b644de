"""A DestinationRule's `tls`: how a sidecar secures the connections it opens to a destination.

Istio's ClientTLSSettings, the four modes:

    DISABLE       plaintext, even where auto mTLS would have used mTLS
    SIMPLE        TLS origination: the app speaks plain HTTP to its sidecar,
                  the sidecar speaks HTTPS to the destination, verifying the
                  server's certificate against `caCertificates` (a PEM file;
                  the system's roots without one) and its name against the
                  SNI (`sni`, else the host the app asked for) — unless
                  `insecureSkipVerify`; `subjectAltNames` replaces the name
                  check with "one of these names"
    MUTUAL        SIMPLE plus a client certificate (`clientCertificate`,
                  `privateKey`)
    ISTIO_MUTUAL  mutual TLS with the sidecar's own mesh certificate, as
                  auto mTLS does between sidecars; for a ServiceEntry host
                  the server must hold a certificate from the mesh's CA
                  (and prove one of `subjectAltNames`, when given)

The files are read by the sidecar (proxy/outbound/origination.py), as Envoy reads
them: paths on the proxy's machine. What needs Kubernetes secrets or CRLs is
refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .fields import At, boolean, check_fields, enum, mapping, string, strings

TLS_MODES = ("DISABLE", "SIMPLE", "MUTUAL", "ISTIO_MUTUAL")


@dataclass(frozen=True)
class ClientTLS:
    mode: str
    ca_certificates: str | None = None
    client_certificate: str | None = None
    private_key: str | None = None
    sni: str | None = None
    subject_alt_names: tuple[str, ...] = ()
    insecure_skip_verify: bool = False


def parse_client_tls(value: Any, at: At) -> ClientTLS:
    block = mapping(value, at)
    for key, what in (("credentialName", "Istio would read the certificates from that Kubernetes secret; "
                                         "give file paths (caCertificates, clientCertificate, privateKey)"),
                      ("caCrl", "Istio would refuse server certificates listed in that revocation list")):
        if key in block:
            raise (at / key).error(f"field '{key}' is not supported by minimesh; {what}")
    check_fields(block, at, ("mode", "caCertificates", "clientCertificate", "privateKey", "sni",
                             "subjectAltNames", "insecureSkipVerify"))
    mode = enum(block.get("mode", "DISABLE"), at / "mode", TLS_MODES)
    files = {key: string(block[key], at / key) for key in ("caCertificates", "clientCertificate", "privateKey")
             if key in block}
    if mode == "MUTUAL" and not ("clientCertificate" in files and "privateKey" in files):
        raise (at / "mode").error("mode MUTUAL needs clientCertificate and privateKey (file paths), as in Istio")
    if mode in ("DISABLE", "ISTIO_MUTUAL"):
        extra = [k for k in (*files, "sni", "insecureSkipVerify") if k in block]
        if extra:
            raise (at / extra[0]).error(f"'{extra[0]}' does nothing with mode {mode} (Istio ignores it there; "
                                        "ISTIO_MUTUAL uses the mesh's own certificates); remove it")
    if mode == "SIMPLE" and ("clientCertificate" in files or "privateKey" in files):
        key = "clientCertificate" if "clientCertificate" in files else "privateKey"
        raise (at / key).error(f"'{key}' is sent only with mode MUTUAL; Istio ignores it with SIMPLE — "
                               "use MUTUAL or remove it")
    names = strings(block.get("subjectAltNames"), at / "subjectAltNames")
    if mode == "ISTIO_MUTUAL" and (len(names) > 1 or any(not n.startswith("spiffe://") for n in names)):
        raise (at / "subjectAltNames").error("with ISTIO_MUTUAL minimesh checks one SPIFFE ID "
                                             "(spiffe://cluster.local/ns/NS/sa/SA); Istio would accept any of "
                                             "the names listed")
    return ClientTLS(
        mode=mode,
        ca_certificates=files.get("caCertificates"),
        client_certificate=files.get("clientCertificate"),
        private_key=files.get("privateKey"),
        sni=string(block["sni"], at / "sni") if "sni" in block else None,
        subject_alt_names=names,
        insecure_skip_verify=boolean(block.get("insecureSkipVerify", False), at / "insecureSkipVerify"),
    )
