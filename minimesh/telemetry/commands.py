"""The four commands' bodies: fetch from the control plane, print, exit."""

from __future__ import annotations

import json
import time
import urllib.parse

import click

from minimesh.errors import UserError
from minimesh.flags import FLAGS, explain as flag_entry
from minimesh.runner.config_commands import control_client
from minimesh.runner.control_client import ControlClient
from minimesh.telemetry.stat import format_stat
from minimesh.telemetry.tap import format_tap
from minimesh.telemetry.waterfall import draw


def stat(*, window: float, as_json: bool, control: str | None = None, home: str | None = None) -> None:
    doc = control_client(control, home)._ok("GET", f"/v1/stat?window={window:g}")
    click.echo(json.dumps(doc, indent=2) if as_json else format_stat(doc))


def tap(*, service: str | None, status: str | None, as_json: bool, count: int | None, seconds: float | None,
        reporter: str, control: str | None = None, home: str | None = None) -> None:
    """Stream tap lines until Ctrl-C, `count` lines, or `seconds` seconds."""
    url = control_client(control, home).url
    client = ControlClient(url, timeout=15, home=home)
    query = {k: v for k, v in (("service", service), ("status", status)) if v}
    if reporter != "all":
        query["reporter"] = reporter
    since, shown = None, 0
    deadline = time.monotonic() + seconds if seconds else None
    try:
        while True:
            wait = 5.0 if deadline is None else max(0.0, min(5.0, deadline - time.monotonic()))
            params = {**query, "timeout": f"{wait:.2f}"} | ({"since": str(since)} if since is not None else {})
            answer = client._ok("GET", "/v1/tap?" + urllib.parse.urlencode(params))
            for event in answer["events"]:
                click.echo(json.dumps(event, separators=(",", ":")) if as_json else format_tap(event))
                shown += 1
                if count and shown >= count:
                    return
            since = answer["next"]
            if deadline is not None and time.monotonic() >= deadline:
                return
    except KeyboardInterrupt:
        return


def trace(trace_id: str | None, *, as_json: bool, service: str | None = None, control: str | None = None,
          home: str | None = None) -> None:
    client = control_client(control, home)
    if trace_id is None:
        query = {"sort": "slowest", "limit": "1"} | ({"service": service} if service else {})
        found = client._ok("GET", "/v1/traces?" + urllib.parse.urlencode(query))["traces"]
        if not found:
            raise UserError("no traces yet: send a request through the gateway first "
                            "(e.g. curl $(minimesh status --json | jq -r .gateway_url)/api/products)")
        trace_id = found[0]["trace_id"]
    status, doc = client.request("GET", f"/v1/traces/{urllib.parse.quote(trace_id)}")
    if status == 404:
        raise UserError(doc.get("error") or f"no trace {trace_id}")
    if status != 200:
        raise UserError(doc.get("error") or f"control plane answered {status}")
    click.echo(json.dumps(doc, indent=2) if as_json else draw(doc, width=_width()))


def explain(code: str | None) -> None:
    if code is None:
        for flag in FLAGS.values():
            click.echo(f"{flag.code:<6} {flag.meaning}")
        return
    try:
        flag = flag_entry(code)
    except KeyError:
        raise UserError(f"unknown response flag {code!r}; known flags: {', '.join(FLAGS)}") from None
    status = f" (the mesh answers {flag.status})" if flag.status else ""
    click.echo(f"{flag.code} — {flag.name}{status}\n\n  What happened: {flag.meaning}\n  Usual cause:   {flag.cause}")


def _width() -> int:
    import shutil

    return max(80, min(160, shutil.get_terminal_size((120, 40)).columns))
