"""Rotation timing (pure), and a swap of credentials that rebuilds the TLS contexts once."""

import pytest

from minimesh.pki.ca import CertificateAuthority
from minimesh.pki.spiffe import spiffe_id
from minimesh.pki.workload import build_csr, credentials, new_key
from minimesh.proxy.identity import RETRY_MAX, WorkloadIdentity, renewal_delay, retry_delay


def creds_for(ca, service, now, ttl):
    key = new_key()
    return credentials(key, ca.sign(build_csr(key, spiffe_id(service)), service, now=now, ttl=ttl).pem, ca.bundle_pem)


@pytest.fixture(scope="module")
def ca():
    return CertificateAuthority.create(now=1_000.0)


@pytest.mark.parametrize("now,delay", [(1_000, 10.0), (1_005, 5.0), (1_010, 0.0), (1_030, 0.0)])
def test_renewal_is_due_at_half_life(ca, now, delay):
    assert renewal_delay(creds_for(ca, "web", 1_000, 20), now) == delay


@pytest.mark.parametrize("failures,now,delay", [
    (1, 1_010, 0.5), (2, 1_010, 1.0), (3, 1_010, 1.0),   # capped at a tenth of the 10 s left
    (1, 1_019, 0.5),                                    # never below the minimum
])
def test_retries_back_off_within_the_time_left(ca, failures, now, delay):
    assert retry_delay(failures, creds_for(ca, "web", 1_000, 20), now) == delay


def test_retry_without_a_certificate_is_capped():
    assert retry_delay(10, None, 0) == RETRY_MAX


def test_install_swaps_contexts_and_remembers_serials(ca):
    identity = WorkloadIdentity("http://cp", "web", "web-0", "token", clock=lambda: 1_000.0)
    first, second = creds_for(ca, "web", 1_000, 20), creds_for(ca, "web", 1_010, 20)
    identity.install(first)
    old = identity.contexts()
    identity.install(second)
    new = identity.contexts()
    assert old is not new and old.creds is first and new.creds is second
    assert list(identity.serials) == [first.serial, second.serial]
    assert new.client_for("catalog") is new.client_for("catalog")  # built once per rotation
    assert new.client_for("catalog").expected_peer == spiffe_id("catalog")
