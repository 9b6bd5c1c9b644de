"""docs/istio-fields.md is what the loader does with every field of Istio's CRDs (tests/istio_fields.py)."""

from pathlib import Path

import pytest

from tests.istio_fields import probes, render

DOC = Path(__file__).resolve().parents[3] / "docs" / "istio-fields.md"

# Refusals still without a sentence on what Istio would do; the kinds and fields issue 17's other
# parts implement (namespaces/exportTo/gateways; DestinationRule tls) replace them.
BARE_REFUSALS_LEFT_TO_OTHERS = {
    "spec.exportTo", "spec.gateways", "spec.tcp", "spec.tls", "spec.workloadSelector",
}


def test_the_table_in_docs_is_what_the_loader_does():
    assert DOC.read_text(encoding="utf-8") == render(), (
        "docs/istio-fields.md drifted from the loader: run `python -m tests.istio_fields > docs/istio-fields.md`")


def test_every_istio_field_is_either_enforced_or_refused_never_called_a_typo():
    bad = [(kind, p.path, p.verdict, p.note) for kind, (_, found) in probes().items() for p in found
           if p.verdict not in ("enforced", "refused", "n/a")]
    assert bad == []


def test_every_refusal_says_more_than_no():
    bare = [(kind, p.path) for kind, (_, found) in probes().items() for p in found
            if p.verdict == "refused" and p.note.rstrip().endswith("is not supported by minimesh")
            and p.path not in BARE_REFUSALS_LEFT_TO_OTHERS and not p.path.endswith(
                (".tls", ".proxyProtocol", ".tunnel"))]
    assert bare == []


@pytest.mark.parametrize("kind, path, verdict", [
    ("VirtualService", "spec.http[].corsPolicy.allowOrigins", "enforced"),
    ("VirtualService", "spec.http[].match[].queryParams", "enforced"),
    ("VirtualService", "spec.http[].delegate", "refused"),
    ("VirtualService", "spec.http[].retries.retryRemoteLocalities", "n/a"),
    ("DestinationRule", "spec.trafficPolicy.portLevelSettings[].loadBalancer.simple", "enforced"),
    ("PeerAuthentication", "spec.portLevelMtls", "enforced"),
    ("AuthorizationPolicy", "spec.targetRefs", "refused"),
])
def test_the_probe_tells_enforced_from_refused(kind, path, verdict):
    found = {p.path: p.verdict for p in probes()[kind][1]}
    assert found[path] == verdict


def test_every_hand_written_note_names_a_field_the_crd_has():
    from tests.istio_fields import NOT_APPLICABLE, NOTES

    probed = {(kind, p.path) for kind, (_, found) in probes().items() for p in found}
    written = {(kind, path) for table in (NOTES, NOT_APPLICABLE) for kind, paths in table.items() for path in paths}
    assert written - probed == set()
