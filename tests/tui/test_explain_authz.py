"""The tap explanation names the AuthorizationPolicy and rule that decided a request."""

from minimesh.control.telemetry import TelemetryHub
from tui.client import parse_tap
from tui.explain import explain


def test_a_denied_request_is_explained_by_its_policy_and_rule():
    hub = TelemetryHub(resolve=lambda endpoint: None, workloads=dict)
    record = {"reporter": "inbound", "service": "payments", "version": "v1", "instance": "payments-1",
              "peer": "catalog;v1;catalog-1", "method": "POST", "authority": "payments", "path": "/pay",
              "status": 403, "flags": "RBAC", "duration_ms": 0.4, "mtls": True,
              "authz": {"decision": "deny", "reason": "denied by DENY policy default/no-pay rules[0]",
                        "policy": "default/no-pay", "rule": 0,
                        "dry_run": "would deny: denied by DENY policy default/dry rules[1]"}}
    event = parse_tap(hub.tap_event(1, record))
    lines = dict(explain(event))
    assert lines["policy"] == ("denied by DENY policy default/no-pay rules[0]; "
                               "dry-run: would deny: denied by DENY policy default/dry rules[1]")
    assert "AuthorizationPolicy denied" in lines["flag RBAC"]
    # A request no policy looked at has no policy line.
    del record["authz"]
    assert "policy" not in dict(explain(parse_tap(hub.tap_event(2, record))))
