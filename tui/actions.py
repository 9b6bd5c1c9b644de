"""Steering the mesh from the TUI: canary weights, fault knobs, lesson steps.

Weights: `shift_weights` writes the VirtualService a learner would write by
hand for a canary — the selected service's catch-all route split between the
first and last subsets of its DestinationRule (v1 and v2 in the shop) — and
moves `step` percent from one to the other. An existing VirtualService keeps
everything else (retries, timeouts, other routes); only the catch-all
route's destinations change. Pure: config in, manifest out. Hosts are read
as Istio reads them (config/namespaces.py): `pricing` in a resource of
namespace `shop` is the TUI's `pricing.shop`, and an FQDN means itself, so a
DestinationRule written `pricing.default.svc.cluster.local` is `pricing`'s.
A new VirtualService goes in the service's own namespace.

Fault knobs: the demo apps' FAILURE_RATE and DELAY_MS, changed at run time
through each instance's /_fault (minimesh/lesson/commands.set_fault).
Lesson steps: the same code as `minimesh lesson step` and `lesson check`.
"""

from __future__ import annotations

import asyncio
import copy
import json
from dataclasses import dataclass

from minimesh.config.namespaces import fqdn, namespace_of_key, qualify, service_key
from minimesh.config.resource import DEFAULT_NAMESPACE

FAILURE_STEPS = (0.0, 0.1, 0.3, 0.5, 0.9)
DELAY_STEPS = (0, 100, 300, 1000)


@dataclass(frozen=True)
class Split:
    service: str
    weights: tuple[tuple[str, int], ...]  # (subset, percent), summing to 100

    def describe(self) -> str:
        return " / ".join(f"{subset} {weight}%" for subset, weight in self.weights)


def key_of(service: str) -> str:
    """The TUI's name of a service ('pricing', 'pricing.shop') as the service key it is."""
    name, dot, namespace = service.partition(".")
    return service_key(name, namespace) if dot and "." not in namespace else service


def _namespace(resource: dict) -> str:
    return (resource.get("metadata") or {}).get("namespace") or DEFAULT_NAMESPACE


def _names(resource: dict, host) -> str | None:
    """The service key `host` names, read in `resource`'s namespace."""
    return qualify(host, _namespace(resource)) if isinstance(host, str) else None


def subsets_of(resources: list[dict], service: str) -> list[str]:
    key = key_of(service)
    for r in resources:
        if r.get("kind") == "DestinationRule" and _names(r, r.get("spec", {}).get("host")) == key:
            return [s["name"] for s in r["spec"].get("subsets") or [] if "name" in s]
    return []


def _virtual_service(resources: list[dict], service: str) -> dict | None:
    key = key_of(service)
    for r in resources:
        if r.get("kind") == "VirtualService" and any(_names(r, h) == key for h in r.get("spec", {}).get("hosts") or []):
            return r
    return None


def _catch_all(http: list[dict]) -> dict:
    """The route that takes what nothing else matched: the first without `match`, else the last."""
    for route in http:
        if not route.get("match"):
            return route
    return http[-1]


def current_split(resources: list[dict], service: str) -> Split | None:
    subsets = subsets_of(resources, service)
    if len(subsets) < 2:
        return None
    first, last = subsets[0], subsets[-1]
    weights = {first: 100, last: 0}
    vs = _virtual_service(resources, service)
    if vs and vs["spec"].get("http"):
        destinations = _catch_all(vs["spec"]["http"]).get("route") or []
        found = {d.get("destination", {}).get("subset"): d.get("weight", 100 if len(destinations) == 1 else 0)
                 for d in destinations if _names(vs, d.get("destination", {}).get("host")) == key_of(service)}
        if found.keys() <= {first, last} and None not in found:
            weights = {first: found.get(first, 0), last: found.get(last, 0)}
            total = sum(weights.values())
            if total > 0 and total != 100:  # weights are relative (Istio): 1 and 3 show as 25 % / 75 %
                weights[last] = round(weights[last] * 100 / total)
                weights[first] = 100 - weights[last]
    return Split(service, ((first, weights[first]), (last, weights[last])))


def shift_weights(resources: list[dict], service: str, step: int) -> tuple[dict, Split] | None:
    """The VirtualService that moves `step` percent toward the last subset (negative: back); None without subsets."""
    split = current_split(resources, service)
    if split is None:
        return None
    (first, w_first), (last, _) = split.weights
    w_last = max(0, min(100, 100 - w_first + step))
    new = Split(service, ((first, 100 - w_last), (last, w_last)))
    key = key_of(service)
    home = namespace_of_key(key)  # None: a host outside the cluster, steered from default
    name = key.split(".")[0] if home is not None else key
    vs = copy.deepcopy(_virtual_service(resources, service))
    if vs is None or not vs["spec"].get("http"):
        where = {"namespace": home} if home not in (None, DEFAULT_NAMESPACE) else {}
        vs = {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
              "metadata": {"name": name, **where}, "spec": {"hosts": [name], "http": [{"name": "canary"}]}}
    # The destination as the VirtualService's own namespace reads it: short at home, else the FQDN.
    host = name if home is None or _namespace(vs) == home else fqdn(key)
    route = [{"destination": {"host": host, "subset": first}, "weight": 100 - w_last},
             {"destination": {"host": host, "subset": last}, "weight": w_last}]
    _catch_all(vs["spec"]["http"])["route"] = route
    return vs, new


def next_step(steps: tuple, current: float, direction: int) -> float:
    """The next value up (+1) or down (-1) the ladder from `current`."""
    if direction > 0:
        return next((s for s in steps if s > current + 1e-9), steps[-1])
    return next((s for s in reversed(steps) if s < current - 1e-9), steps[0])


def set_fault(control_url: str, service: str, knobs: dict) -> list[str]:
    """Set knobs on every instance of `service`; lines saying what each instance now has."""
    from minimesh.lesson.check import load_stack
    from minimesh.lesson.commands import set_fault as put

    async def run():
        return await put(await load_stack(control_url, ""), service, knobs)

    return asyncio.run(run())


def read_fault(app_address: str) -> dict:
    """An app's fault knobs now (GET /_fault)."""
    from tui.client import _opener

    with _opener.open(f"http://{app_address}/_fault", timeout=5) as resp:
        return json.loads(resp.read())
