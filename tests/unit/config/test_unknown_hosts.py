"""Hosts no service answers to: accepted as on Istio, reported as istioctl analyze does (issue 18, defect 7)."""

from minimesh.config import load_manifests, unknown_hosts

DOCS = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: pricing}
spec:
  hosts: [pricing]
  http:
  - route:
    - destination: {host: pricing}
      weight: 90
    - destination: {host: pricnig}
      weight: 10
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: payments}
spec:
  host: payments.default.svc.cluster.local
"""


def test_unknown_hosts_are_named_with_their_field():
    resources = load_manifests(DOCS, "x.yaml")
    lines = unknown_hosts(resources, {"pricing", "web"})
    assert [line.split(":")[0] for line in lines] == [
        "VirtualService default/pricing http[0].route[1].destination.host",
        "DestinationRule default/payments host",
    ]
    assert all("IST0101" in line and "accepted" in line for line in lines)
    assert unknown_hosts(resources, {"pricing", "pricnig", "payments"}) == []
