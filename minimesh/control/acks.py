"""What each proxy said about the last snapshot it was sent: ACK or NACK.

This is Envoy's xDS bookkeeping in miniature. An ACK names the snapshot
version a proxy now runs; a NACK names the version it refused and why, while
the proxy keeps its last good config. The pair lets an operator see at a
glance (`/v1/status`) which proxies are current and which rejected a push.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

log = logging.getLogger("minimesh.control")


@dataclass(frozen=True)
class AckState:
    acked_version: str | None = None
    nacked_version: str | None = None
    nack_error: str | None = None

    def to_json(self) -> dict:
        return {"acked_version": self.acked_version, "nacked_version": self.nacked_version,
                "nack_error": self.nack_error}


def record(state: AckState, version: str, error: str | None) -> AckState:
    """The next state after an ACK (error None) or a NACK (error given)."""
    if error is None:
        # A later ACK means the refusal is history: the proxy runs a good config now.
        return AckState(acked_version=version)
    return AckState(acked_version=state.acked_version, nacked_version=version, nack_error=error)


class AckBook:
    """ACK/NACK state per node name."""

    def __init__(self) -> None:
        self._by_node: dict[str, AckState] = {}

    def record(self, node: str, version: str, error: str | None) -> None:
        self._by_node[node] = record(self._by_node.get(node, AckState()), version, error)
        if error is not None:
            log.warning("NACK from %s for snapshot %s: %s", node, version, error)

    def get(self, node: str) -> AckState:
        return self._by_node.get(node, AckState())

    def forget(self, node: str) -> None:
        self._by_node.pop(node, None)
