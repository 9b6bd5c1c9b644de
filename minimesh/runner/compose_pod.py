"""Keeping a sidecar beside its app in Docker Compose, as a Kubernetes pod would.

    python -m minimesh.runner.compose_pod -- minimesh sidecar --control https://control:15010 …

In a compose stack each sidecar container joins its app container's network
namespace (`network_mode: service:<app>`), so the app reaches its sidecar on
127.0.0.1. Docker gives that sharing one sharp edge: the namespace belongs to
the app container. When the app container stops, Docker tears its namespace
down, and the sidecar is left in an empty one with only a loopback interface —
alive, but cut off. When the app container starts again it gets a fresh
namespace, and nothing moves the sidecar into it. (Kubernetes avoids this with
a third "pause" container that owns the pod's namespace.)

This wrapper turns that edge into the behaviour a mesh wants:

1. It starts the sidecar, advertising this namespace's address on the compose
   network (what other containers, and a Linux host, can reach).
2. While the app is gone the sidecar cannot heartbeat, so the control plane
   drops the instance when its registration expires — callers stop picking it.
3. The wrapper notices the interface is gone, waits until Docker has rebuilt
   the app's namespace (Docker maps the app's new address in the /etc/hosts
   both containers share), and exits.
   `restart: unless-stopped` starts the sidecar container again, now inside
   the new namespace, and the instance registers again.

Signals are passed on, so `docker compose stop` still lets the sidecar
deregister and drain. The wrapper also hands the sidecar its join token from
the file the compose file mounts, and `compose_pod tokens` (a one-shot job)
writes those files.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

INTERFACE = Path("/sys/class/net/eth0")
TOKEN_FILE = Path("/run/minimesh/token")  # this service's join token (the compose file mounts it)
TOKENS_DIR = "/tokens"
HOSTS = Path("/etc/hosts")  # shared with the app container; Docker rewrites it for each new namespace
POLL_S = 1.0
SETTLE_S = 2.0  # give the restarted app a moment to be running, so our restart can join it


def advertise_address(control_url: str, deadline_s: float = 30.0) -> str:
    """This namespace's address as seen on the way to the control plane."""
    parsed = urlparse(control_url)
    stop = time.monotonic() + deadline_s
    while True:
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.connect((parsed.hostname, parsed.port or 80))  # UDP: no packet is sent
                return s.getsockname()[0]
        except OSError:
            if time.monotonic() > stop:
                raise
            time.sleep(0.5)


def control_url_of(argv: list[str]) -> str:
    return argv[argv.index("--control") + 1]


def hosts_view() -> tuple[float, bool]:
    """(when /etc/hosts last changed, whether it maps the app's address)."""
    try:
        mtime = HOSTS.stat().st_mtime
        lines = HOSTS.read_text().splitlines()
    except OSError:
        return 0.0, False
    addresses = [line.split()[0] for line in lines if line.strip() and not line.startswith("#")]
    return mtime, any(not a.startswith(("127.", "::", "fe00:", "ff0")) for a in addresses)


def app_is_back(born_mtime: float) -> bool:
    """Docker deletes the app's entry from the shared /etc/hosts when its namespace goes,
    and writes a new one when the restarted app gets its new namespace."""
    mtime, mapped = hosts_view()
    return mapped and mtime != born_mtime


def write_tokens(argv: list[str]) -> int:
    """`tokens --home H SERVICE[=ACCOUNT]…`: each service's join token into /tokens/<service>/token,
    and the mesh CA's certificate beside it (ca.pem: how its sidecar verifies the control plane).
    The token is for ACCOUNT (pki/spiffe.py's account key), the service's own name when not given."""
    from minimesh.pki.ca import CERT_FILE
    from minimesh.pki.tokens import join_token, load_or_create_secret

    home, services = Path(argv[argv.index("--home") + 1]), argv[argv.index("--home") + 2:]
    secret = load_or_create_secret(home / "control")
    ca_pem = (home / "control" / CERT_FILE).read_text()
    for item in services:
        service, _, account = item.partition("=")
        path = Path(TOKENS_DIR) / service / "token"
        path.write_text(join_token(secret, account or service))
        path.chmod(0o600)
        (path.parent / "ca.pem").write_text(ca_pem)
    print(f"compose_pod: join tokens written for {', '.join(s.partition('=')[0] for s in services)}", flush=True)
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["tokens"]:
        return write_tokens(argv[1:])
    if argv[:1] == ["--"]:
        argv = argv[1:]
    token = TOKEN_FILE.read_text().strip() if TOKEN_FILE.is_file() else ""
    if token:  # in the environment, never on a command line (`ps` would show it)
        os.environ["MINIMESH_JOIN_TOKEN"] = token
    if "--advertise-host" not in argv:
        argv = [*argv, "--advertise-host", advertise_address(control_url_of(argv))]
    child = subprocess.Popen(argv)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, _frame: child.send_signal(signum))
    born, _ = hosts_view()
    while child.poll() is None:
        if not INTERFACE.exists():
            print("compose_pod: the app container stopped and took the network namespace with it; "
                  "waiting for it to restart", file=sys.stderr, flush=True)
            while not app_is_back(born) and child.poll() is None:
                time.sleep(POLL_S)
            time.sleep(SETTLE_S)
            print("compose_pod: the app container is back; restarting to join its new namespace",
                  file=sys.stderr, flush=True)
            child.kill()  # it cannot deregister from a dead namespace anyway
            child.wait()
            return 1
        time.sleep(POLL_S)
    return child.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
