"""Keeping a sidecar beside its app in Docker Compose, as a Kubernetes pod would.

    python -m minimesh.runner.compose_pod -- minimesh sidecar --control http://control:15010 …

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
   the app's namespace (the shared /etc/hosts is rewritten then), and exits.
   `restart: unless-stopped` starts the sidecar container again, now inside
   the new namespace, and the instance registers again.

Signals are passed on, so `docker compose stop` still lets the sidecar
deregister and drain.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

INTERFACE = Path("/sys/class/net/eth0")
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


def stamp() -> float:
    try:
        return HOSTS.stat().st_mtime
    except OSError:
        return 0.0


def main(argv: list[str]) -> int:
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if "--advertise-host" not in argv:
        argv = [*argv, "--advertise-host", advertise_address(control_url_of(argv))]
    child = subprocess.Popen(argv)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, _frame: child.send_signal(signum))
    born = stamp()
    while child.poll() is None:
        if not INTERFACE.exists():
            print("compose_pod: the app container stopped and took the network namespace with it; "
                  "waiting for it to restart", file=sys.stderr, flush=True)
            while stamp() == born and child.poll() is None:
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
