"""Join tokens: how a sidecar proves which service it speaks for.

The CA will put any identity into a certificate; something must decide which
one a given sidecar deserves. In Kubernetes that proof is the pod's service
account token, which the kubelet mounts and istiod checks with the API
server. minimesh has no API server, so the operator hands each sidecar a
join token (`minimesh token SERVICE`; the runner does it for every sidecar it
starts). Without a valid token for `web`, no certificate for `web` — so a
process on the network cannot simply ask the CA to *be* web.

A token is an HMAC of the service name under a secret only the control plane
(and whoever can read its home) holds:

    token = "mmjt." + hex(HMAC-SHA256(secret, "minimesh join token v1\\0" + service))[:40]

so the control plane stores no list of tokens and checks one with a single
constant-time comparison. The price: a token cannot be revoked alone;
replacing the secret (delete `<home>/control/join-secret`, restart) revokes
them all. A token is a credential: never log it, never put it on a command
line others can read — the runner passes it in the environment.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from pathlib import Path

from minimesh.pki.ca import write_private

SECRET_FILE = "join-secret"
TOKEN_ENV = "MINIMESH_JOIN_TOKEN"
_PREFIX = "mmjt."


def load_or_create_secret(directory: Path) -> bytes:
    """The control plane's token secret in `directory`, created (mode 0600) on first use."""
    path = Path(directory) / SECRET_FILE
    try:
        return bytes.fromhex(path.read_text().strip())
    except FileNotFoundError:
        pass
    try:
        write_private(path, secrets.token_hex(32).encode())
    except FileExistsError:
        pass  # another process (the runner, the control plane) made it first: use theirs
    return bytes.fromhex(path.read_text().strip())


def join_token(secret: bytes, service: str) -> str:
    digest = hmac.new(secret, b"minimesh join token v1\0" + service.encode(), hashlib.sha256).hexdigest()
    return _PREFIX + digest[:40]


def token_is_valid(secret: bytes, service: str, token: str | None) -> bool:
    if not token or not service:
        return False
    return hmac.compare_digest(join_token(secret, service).encode(), token.encode())


def issue_token(home: str | Path, service: str) -> str:
    """`minimesh token SERVICE`: the token for SERVICE under the secret in `<home>/control`."""
    return join_token(load_or_create_secret(Path(home) / "control"), service)
