"""Free TCP ports on 127.0.0.1 for a local stack, and the check that one is free.

Local mode gives every listener its own port. The kernel picks one when we
bind to port 0; we close the socket at once and hand the number out, keeping a
set so that one stack never hands the same port out twice. (Another program
could take it in the moment between — rare, and the process that loses the
race fails loudly with "address in use" in its log.)
"""

import errno
import socket

from minimesh.errors import UserError

HOST = "127.0.0.1"
# The gateway's plain HTTP port on the host, standing for port 80 of a Gateway: `up` and compose
# publish it, doctor checks it (--port / MINIMESH_GATEWAY_PORT choose another).
GATEWAY_PORT = 8080
# The gateway's HTTPS port, standing for port 443 of a Gateway: `up` takes it when free (supervisor.py),
# compose publishes it (compose.py), doctor checks it.
GATEWAY_HTTPS_PORT = 8443


class PortAllocator:
    """Hands out distinct free ports."""

    def __init__(self, host: str = HOST):
        self.host = host
        self._given: set[int] = set()

    def allocate(self) -> int:
        while True:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.bind((self.host, 0))
                port = s.getsockname()[1]
            if port not in self._given:
                self._given.add(port)
                return port

    def reserve(self, port: int) -> None:
        """Remember a port chosen elsewhere (e.g. --gateway-port) so it is not handed out."""
        self._given.add(port)


def is_free(port: int, host: str = HOST) -> bool:
    """True when nothing listens on host:port and a server could bind it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # Servers set SO_REUSEADDR, so a port in TIME_WAIT counts as free — as it is for them.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as e:
            if e.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return not is_listening(port, host)


def is_listening(port: int, host: str = HOST, timeout: float = 0.5) -> bool:
    """True when a TCP connect to host:port succeeds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def ensure_free(port: int, what: str, hint: str | None = None) -> None:
    """Raise one clear line when `port` is taken; `what` names who wanted it."""
    if not is_free(port):
        hint = hint or "stop whatever holds it or choose another port"
        raise UserError(f"port {port} is already in use ({what}); {hint}")


GATEWAY_HINT = ("stop whatever holds it, or choose another port: `minimesh up LESSON_DIR --port 8081` "
                "(or `make demo PORT=8081`; --port 0 takes any free port)")
