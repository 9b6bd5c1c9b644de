"""The keys that change the mesh from the TUI: shift a canary's weights, turn a fault knob, generate traffic.

A mixin of MeshTUI (app.py): each action runs in a worker thread and reports
back in the status line through `_deliver`, so a slow control plane never
freezes the screen.
"""

from __future__ import annotations

import threading

from textual import work

from tui import actions
from tui.client import Unreachable


class SteeringKeys:
    def action_shift(self, step: int) -> None:
        service = self.selected_service()
        if service is None:
            self.say("select a service first (services or edges view)")
            return
        self.shift(service, step)

    @work(thread=True, exclusive=True, group="steer")
    def shift(self, service: str, step: int) -> None:
        try:
            _, resources = self.client.config()
            change = actions.shift_weights(resources, service, step)
            if change is None:
                self._deliver(self.say, f"{service}: no DestinationRule with two subsets to split between")
                return
            manifest, split = change
            version = self.client.apply([manifest], source=f"minimesh tui (canary {service})")
            self._deliver(self.say, f"{service}: {split.describe()} (config v{version})")
        except (Unreachable, ValueError) as e:
            self._deliver(self.say, f"[red]canary {service}: {e}[/]")

    def action_fault(self, knob: str, direction: int) -> None:
        service = self.selected_service()
        if service is None:
            self.say("select a service first")
            return
        self.fault(service, knob, direction)

    @work(thread=True, exclusive=True, group="steer")
    def fault(self, service: str, knob: str, direction: int) -> None:
        try:
            apps = [i.app for i in self.client.instances() if i.service == service and i.kind == "sidecar" and i.app]
            if not apps:
                self._deliver(self.say, f"{service}: no instance with an app address")
                return
            now = actions.read_fault(apps[0])
            ladder = actions.FAILURE_STEPS if knob == "failure_rate" else actions.DELAY_STEPS
            value = actions.next_step(ladder, float(now.get(knob, 0)), direction)
            actions.set_fault(self.client.url, service, {knob: value})
            self._deliver(self.say, f"{service}: {knob}={value:g} on {len(apps)} instance(s)")
        except Exception as e:  # noqa: BLE001 — any failure is the learner's to read, not a crash
            self._deliver(self.say, f"[red]fault {service}: {e}[/]")

    def action_traffic(self) -> None:
        if self._traffic is not None:
            self._traffic.set()
            self._traffic = None
            self.say("traffic off")
            return
        if not self.gateway_url:
            self.say("no gateway known: start the TUI with --gateway URL to generate traffic")
            return
        self._traffic = threading.Event()
        self.generate(self._traffic)
        self.say("traffic on: a shopper every 100 ms through the gateway")

    @work(thread=True, group="traffic")
    def generate(self, stop: threading.Event) -> None:
        from tui.traffic import shop

        try:  # the running lesson's services, so the shoppers only do what it can serve
            services = {i.service for i in self.client.instances() if i.kind == "sidecar"}
        except Unreachable:
            services = None
        shop(self.gateway_url, stop, services=services or None)
