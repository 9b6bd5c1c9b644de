"""TLS to the control plane, client side: verify it by the mesh CA, present our certificate.

Only the standard `ssl` module here, no `cryptography`: a sidecar builds
this context at start and after every rotation, and a sidecar's process
never loads `cryptography` (its key and CSR are made in a short-lived child
process, pki/csr.py) — ~10 MB of resident memory per sidecar (issue 16).
"""

from __future__ import annotations

import os
import ssl
import tempfile
from pathlib import Path

# Where a stack keeps the operator's credentials and the mesh CA's certificate (operator.py).
CREDENTIALS_DIR = "credentials"
CA_FILE = "ca.pem"


def credentials_dir(home: str | os.PathLike) -> Path:
    return Path(home) / CREDENTIALS_DIR


def load_chain(ctx: ssl.SSLContext, pem: bytes) -> None:
    """The ssl module loads keys from files only: a private directory, gone at once."""
    with tempfile.TemporaryDirectory(prefix="minimesh-tls-") as d:
        path = os.path.join(d, "chain.pem")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
        ctx.load_cert_chain(path)


def client_context(bundle_pem: str, chain_pem: bytes | None) -> ssl.SSLContext:
    """A client of the control plane: verify it chains to the mesh CA, present `chain_pem` if any.

    Host names are not checked (the server's certificate names 127.0.0.1,
    localhost and control, but a compose host may dial the container's IP);
    the chain is, and only the control plane holds a certificate for CONTROL.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(cadata=bundle_pem)
    if chain_pem:
        load_chain(ctx, chain_pem)
    return ctx
