"""Which configurations a run measures, and which of them this checkout can run.

direct and the plaintext sidecar pair always run. The HAProxy pair needs the
`haproxy` binary. Telemetry off and mTLS are features built after this
harness: each is detected from what the checkout offers (a sidecar option,
a PKI module), and a configuration that cannot run is still listed, with the
reason, so the JSON says what was *not* measured instead of leaving it out.
"""

from __future__ import annotations

import shutil
import subprocess

from bench.topology import Configuration, minimesh_command

DIRECT = Configuration("direct", "direct", "client → app (the baseline every ratio is against)")
HAPROXY = Configuration("haproxy", "haproxy", "client → HAProxy → HAProxy → app (the native-proxy anchor)")
RELAY = Configuration("relay", "relay", "client → bench.relay → bench.relay → app: a bare Python L7 relay "
                      "pair (uvloop, httptools, no mesh), the ceiling of a Python proxy on this machine")
RELAY_MTLS = Configuration("relay-mtls", "relay", "the bare relay pair, mutual TLS 1.3 between the two relays",
                           mtls=True)
PLAIN = Configuration("minimesh", "minimesh", "client → sidecar → sidecar → app, plaintext, telemetry on")


def sidecar_help() -> str:
    out = subprocess.run([*minimesh_command(), "sidecar", "--help"], capture_output=True, text=True, timeout=30)
    return out.stdout


def telemetry_off_args(help_text: str) -> tuple[str, ...] | None:
    """The sidecar option that turns telemetry off, if this checkout has one."""
    for option in ("--no-telemetry", "--telemetry=off"):
        if option.split("=")[0] in help_text:
            return (option,)
    return None


# Mesh-wide STRICT: plaintext is refused, so a request that arrives at all came over mTLS.
STRICT = {"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
          "metadata": {"name": "default", "namespace": "default"}, "spec": {"mtls": {"mode": "STRICT"}}}


def full_telemetry(help_text: str) -> tuple[Configuration, str | None]:
    """Telemetry as the lessons run it: every request in the access log, every trace recorded."""
    config = Configuration("minimesh-full-telemetry", "minimesh",
                           "sidecar pair, plaintext, access log on and every trace recorded (as in lessons)",
                           sidecar_args=("--access-log", "--trace-sampling", "100"))
    return config, (None if "--trace-sampling" in help_text else "the sidecar has no --trace-sampling yet")


def mtls_variant(help_text: str) -> tuple[Configuration | None, str]:
    """(the mTLS configuration, "") or (None, why it cannot run yet)."""
    if "--token" not in help_text:
        return None, "mTLS is not in this checkout yet (issue 4: sidecars have no --token)"
    return Configuration("minimesh-mtls", "minimesh", "sidecar pair, mTLS (STRICT), telemetry on",
                         mtls=True, manifests=(STRICT,)), ""


def authz_policies(policies: int = 10, rules: int = 5) -> tuple[dict, ...]:
    """`policies` AuthorizationPolicies of `rules` rules each, all selecting the bench workload.

    The worst case for the layer that is still a working policy set: one DENY
    policy and nine ALLOW policies whose every rule fails only on its last
    field (the path), so each request is checked against all 50 rules, three
    fields each, and allowed by the very last one.
    """
    out = []
    for p in range(policies):
        action = "DENY" if p == 0 else "ALLOW"
        body = []
        for r in range(rules):
            last = p == policies - 1 and r == rules - 1
            body.append({"from": [{"source": {"ipBlocks": ["127.0.0.0/8"]}}],
                         "to": [{"operation": {"methods": ["GET", "HEAD"],
                                               "paths": ["/*" if last else f"/p{p}/r{r}/*"]}}]})
        out.append({"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
                    "metadata": {"name": f"bench-{p}", "namespace": "default"},
                    "spec": {"selector": {"matchLabels": {"app": "bench"}}, "action": action, "rules": body}})
    return tuple(out)


AUTHZ = Configuration("minimesh-authz", "minimesh",
                      "sidecar pair, plaintext, telemetry on, 10 AuthorizationPolicies x 5 rules at the inbound",
                      manifests=authz_policies())


def plan(include_haproxy: bool = True) -> list[tuple[Configuration, str | None]]:
    """Every configuration with None, or with the reason it is skipped."""
    help_text = sidecar_help()
    rows: list[tuple[Configuration, str | None]] = [(DIRECT, None)]
    if include_haproxy:
        rows.append((HAPROXY, None if shutil.which("haproxy") else
                     "haproxy is not installed (Debian: apt-get install haproxy)"))
    rows.append((RELAY, None))
    rows.append((RELAY_MTLS, None))
    rows.append((PLAIN, None))
    rows.append((AUTHZ, None))
    quiet = telemetry_off_args(help_text)
    no_telemetry = Configuration("minimesh-no-telemetry", "minimesh",
                                 "sidecar pair, plaintext, telemetry off", telemetry=False,
                                 sidecar_args=quiet or ())
    rows.append((no_telemetry, None if quiet else "the sidecar has no option to turn telemetry off yet (issue 5)"))
    rows.append(full_telemetry(help_text))
    mtls, why = mtls_variant(help_text)
    if mtls is None:
        rows.append((Configuration("minimesh-mtls", "minimesh", "sidecar pair, mTLS, telemetry on",
                                   mtls=True), why))
    else:
        rows.append((mtls, None))
        if quiet:
            rows.append((Configuration(mtls.name + "-no-telemetry", "minimesh", "sidecar pair, mTLS (STRICT), telemetry off",
                                       mtls=True, telemetry=False, sidecar_args=mtls.sidecar_args + quiet,
                                       manifests=mtls.manifests), None))
    return rows
