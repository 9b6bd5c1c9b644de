"""Lesson 04's break-it 1 as its README tells it (issue 18, defect 11): the JSON and CSR it shows,
sent with another service's join token, get the 403 it promises — and nothing is signed."""

import aiohttp
import pytest

from minimesh.pki.tokens import issue_token
from minimesh.pki.workload import build_csr, new_key
from tests.support.control import run_control_plane

pytestmark = pytest.mark.timeout(60)


async def test_a_token_buys_only_its_own_services_identity(tmp_path):
    async with run_control_plane(tmp_path / "home") as control:
        body = {"service": "catalog", "instance": "mitm",
                "csr": build_csr(new_key(), "spiffe://cluster.local/ns/default/sa/catalog")}
        headers = {"Authorization": f"Bearer {issue_token(tmp_path / 'home', 'payments')}"}
        async with aiohttp.ClientSession(trust_env=False) as http:
            async with http.post(f"{control.url}/v1/sign", json=body, headers=headers) as resp:
                answer = await resp.json()
        assert resp.status == 403 and answer.get("error") and "certificate" not in answer
