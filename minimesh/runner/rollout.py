"""`minimesh apply --wait`: return once every proxy runs the new config, or say who does not.

Applying is only half of a change: the control plane holds the new config at
once, but traffic obeys it only after each proxy has received, parsed and
ACKed it. This module waits on the control plane's `/v1/rollout` long poll
until the new config version is ACKed everywhere (converged), or NACKed
somewhere (failed: that proxy keeps its last good config and will not try
this one again), or the timeout passes — and turns the answer into one line.

The convergence time printed is the control plane's own measure, from the
commit of the version to the last ACK (Istio's `pilot_proxy_convergence_time`),
so it does not include this command's start-up or polling.
"""

from __future__ import annotations

import time
import urllib.parse
from dataclasses import dataclass

from minimesh.errors import UserError
from minimesh.runner.control_client import ControlClient

DEFAULT_TIMEOUT = 10.0
POLL_SLICE = 30.0  # longest single long poll; the loop asks again until the deadline


@dataclass(frozen=True)
class RolloutResult:
    config_version: int
    proxies: int
    convergence_s: float | None  # the control plane's measure
    waited_s: float              # what this client saw, from `started` (its apply) to the answer

    def describe(self, changed: bool = True) -> str:
        if not changed:  # nothing new was rolled out; its old convergence time would mislead
            return f"config version {self.config_version} unchanged: all {self.proxies} proxies run it"
        took = self.convergence_s if self.convergence_s is not None else self.waited_s
        return (f"config version {self.config_version} in force: {self.proxies}/{self.proxies} proxies "
                f"ACKed it; converged in {took * 1000:.0f} ms "
                f"({self.waited_s * 1000:.0f} ms from apply to the last ACK, seen from here)")


def behind_message(answer: dict, timeout: float) -> str:
    """Pure: the one line naming every proxy that did not take the version, and why."""
    nacked = [f"{p['node']} refused it (NACK: {p['nack_error']})" for p in answer["proxies"] if p["state"] == "nacked"]
    pending = [f"{p['node']} (runs config {p['acked_config_version'] if p['acked_config_version'] is not None else 'none'})"
               for p in answer["proxies"] if p["state"] == "pending"]
    parts = []
    if nacked:
        parts.append("; ".join(nacked))
    if pending:
        parts.append(f"no ACK within {timeout:g}s from " + ", ".join(pending))
    fix = ("the previous config stays in force there; fix the manifest and apply again" if nacked
           else "is that sidecar stuck or unable to reach the control plane? see `minimesh status`")
    return f"config version {answer['config_version']} is not in force everywhere: {'; '.join(parts)} — {fix}"


def wait_for_rollout(client: ControlClient, config_version: int, timeout: float = DEFAULT_TIMEOUT,
                     clock=time.monotonic, started: float | None = None) -> RolloutResult:
    """Block until `config_version` is ACKed by every proxy; UserError names the ones that did not.

    `started` (a `clock()` reading taken before the apply) is where the client's own measure begins."""
    started = clock() if started is None else started
    deadline = clock() + timeout
    while True:
        remaining = max(0.0, deadline - clock())
        poll = ControlClient(client.url, timeout=min(remaining, POLL_SLICE) + 5, home=client.home)
        query = urllib.parse.urlencode({"version": config_version, "timeout": f"{min(remaining, POLL_SLICE):.3f}"})
        status, answer = poll.request("GET", f"/v1/rollout?{query}")
        if status != 200:
            raise UserError(answer.get("error") or f"control plane answered {status} to GET /v1/rollout")
        if answer["converged"]:
            return RolloutResult(config_version, len(answer["proxies"]), answer.get("convergence_s"),
                                 clock() - started)
        if answer["failed"] or clock() >= deadline:
            raise UserError(behind_message(answer, timeout))
