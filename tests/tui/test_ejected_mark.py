"""The services view marks instances that outlier detection ejected (from /v1/status's `ejections`)."""

from tui.client import parse_status
from tui.state import MeshState
from tui.views.services import rows


def status_doc(ejections):
    proxy = lambda node: {"node": node, "service": "payments", "version": "v1", "kind": "sidecar"}  # noqa: E731
    return {"config_version": 1, "snapshot_version": "s", "ejections": ejections,
            "proxies": [proxy("payments-v1-0"), proxy("payments-v1-1"), proxy("payments-v1-2")]}


def meshed_text(state) -> str:
    [(key, cells)] = rows(state, now=0.0)
    return cells[2].plain


def test_an_ejected_instance_is_marked_and_a_healthy_service_is_not():
    state = MeshState()
    state.status = parse_status(status_doc([]))
    assert "ejected" not in meshed_text(state)
    state.status = parse_status(status_doc([{"instance": "payments-v1-0", "by": "web-v1-0", "until": 1e12}]))
    assert "⏏1 ejected" in meshed_text(state)
    assert state.status.ejected_instances("payments", "v1") == {"payments-v1-0"}
