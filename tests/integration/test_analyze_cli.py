"""`minimesh analyze` and the warnings `minimesh apply` prints: the CLI as a learner runs it.

Offline (no stack) it checks the files alone; against a real control plane
it checks them over the config in force and the workloads registered, as
`istioctl analyze` checks a cluster. `apply` prints the same messages as
warnings and applies anyway (Istio accepts all of these).
"""

import asyncio
import os
import sys

import aiohttp
import pytest

from tests.support.control import run_control_plane

pytestmark = pytest.mark.timeout(90)

DR = """apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: pricing}
spec:
  host: pricing
  subsets: [{name: v1, labels: {version: v1}}]
"""
VS = """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: pricing}
spec:
  hosts: [pricing]
  http:
  - route: [{destination: {host: pricing, subset: v3}}]
  - match: [{uri: {prefix: /a}}]
    route: [{destination: {host: pricing, subset: v1}}]
"""
POLICY = """apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: lock-payments}
spec:
  selector: {matchLabels: {app: paymnets}}
  action: DENY
  rules: [{}]
"""


async def run_cli(*args, home, control_url=None):
    env = {k: v for k, v in os.environ.items() if k not in ("HTTP_PROXY", "http_proxy", "MINIMESH_CONTROL_URL")}
    env["MINIMESH_HOME"] = str(home)
    extra = ("--control", control_url) if control_url else ()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "minimesh.cli", *args, *extra, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    return proc.returncode, out.decode(), err.decode()


@pytest.fixture
def files(tmp_path):
    for name, text in (("dr.yaml", DR), ("vs.yaml", VS), ("policy.yaml", POLICY)):
        (tmp_path / name).write_text(text)
    return tmp_path


async def test_analyze_offline_checks_the_files_alone(files, tmp_path):
    code, out, err = await run_cli("analyze", str(files / "dr.yaml"), str(files / "vs.yaml"),
                                   str(files / "policy.yaml"), home=tmp_path / "no-stack")
    assert code == 79, err  # istioctl analyze's code when it finds an Error-level message
    assert ("Error [IST0101] (VirtualService pricing.default) http[0].route[0]: "
            "subset 'v3' of host 'pricing' is not defined") in out
    assert "Warning [IST0130] (VirtualService pricing.default) http[1]: never used" in out
    assert "IST0127" not in out  # no workloads known offline: the selector check is skipped
    code, out, _ = await run_cli("analyze", str(files / "dr.yaml"), home=tmp_path / "no-stack")
    assert (code, out.strip()) == (0, f"✔ No validation issues found when analyzing {files / 'dr.yaml'}")


async def test_analyze_and_apply_against_a_running_control_plane(files, tmp_path):
    async with run_control_plane(tmp_path / "home", ttl=30.0, warmup=0.0) as cp:
        async with aiohttp.ClientSession(trust_env=False) as http:
            async with http.post(cp.url + "/v1/register", json={
                    "service": "pricing", "version": "v1", "instance": "pricing-v1-0", "kind": "sidecar",
                    "addresses": {"app": None, "inbound": None, "outbound": None, "admin": "127.0.0.1:1"}}) as r:
                assert r.status == 200
        # The policy selects app=paymnets: no workload has it (IST0127), with pricing registered.
        code, out, err = await run_cli("analyze", str(files / "policy.yaml"), home=tmp_path, control_url=cp.url)
        assert code == 0, err  # warnings only
        assert ("Warning [IST0127] (AuthorizationPolicy lock-payments.default) selector: "
                "no workload has the labels app=paymnets") in out
        # apply: the same messages as warnings on stderr, and the config is applied all the same.
        code, out, err = await run_cli("apply", str(files / "dr.yaml"), str(files / "vs.yaml"), home=tmp_path,
                                       control_url=cp.url)
        assert code == 0, err
        assert "virtualservice/pricing created" in out and "config version 1" in out
        assert ("warning: VirtualService default/pricing http[0].route[0]: subset 'v3' of host 'pricing' is not "
                "defined") in err
        assert "(istioctl analyze: IST0101 ReferencedResourceNotFound)" in err
        assert "(istioctl analyze: IST0130 VirtualServiceUnreachableRule)" in err
        # analyze with no files: the config in force, over the registered workloads.
        code, out, _ = await run_cli("analyze", home=tmp_path, control_url=cp.url)
        assert code == 79 and "IST0101" in out and "IST0130" in out and "IST0127" not in out
