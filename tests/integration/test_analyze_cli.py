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
GATEWAY = """apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: shop-gateway}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: [shop.example.com]}]
"""
INGRESS_VS = """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: shop-ingress}
spec:
  hosts: [shop.example.com]
  gateways: [shop-gw]
  http: [{route: [{destination: {host: pricing}}]}]
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
    for name, text in (("dr.yaml", DR), ("vs.yaml", VS), ("policy.yaml", POLICY), ("gateway.yaml", GATEWAY),
                       ("ingress.yaml", INGRESS_VS)):
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
                "no workload in namespace 'default' has the labels app=paymnets") in out
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


async def test_gateway_checks_offline_and_at_apply(files, tmp_path):
    # Offline: the VirtualService names a Gateway that is not there (Istio's IST0101), and the Gateway
    # that is there has no VirtualService (minimesh's MM0001): an Error, so exit 79.
    code, out, err = await run_cli("analyze", str(files / "gateway.yaml"), str(files / "ingress.yaml"),
                                   home=tmp_path / "no-stack")
    assert code == 79, err
    assert ("Error [IST0101] (VirtualService shop-ingress.default) gateways[0]: Gateway 'default/shop-gw' does not "
            "exist (Gateways: default/shop-gateway)") in out
    assert ("Warning [MM0001] (Gateway shop-gateway.default) servers: no VirtualService names it in 'gateways:'"
            in out)
    # apply: warned, and applied all the same (Istio accepts both).
    async with run_control_plane(tmp_path / "home", ttl=30.0, warmup=0.0) as cp:
        code, out, err = await run_cli("apply", str(files / "gateway.yaml"), str(files / "ingress.yaml"),
                                       home=tmp_path, control_url=cp.url)
        assert code == 0, err
        assert "gateway/shop-gateway created" in out and "virtualservice/shop-ingress created" in out
        assert ("warning: VirtualService default/shop-ingress gateways[0]: Gateway 'default/shop-gw' does not exist"
                in err)
        assert "(istioctl analyze: IST0101 ReferencedResourceNotFound)" in err
        assert "(minimesh analyze: MM0001 GatewayWithoutVirtualService; istioctl analyze does not check this)" in err
        # Fixing the binding clears both; the Gateway's selector matches no registered workload (none runs).
        (files / "ingress.yaml").write_text(INGRESS_VS.replace("shop-gw", "shop-gateway"))
        code, out, err = await run_cli("apply", str(files / "ingress.yaml"), home=tmp_path, control_url=cp.url)
        assert code == 0 and "virtualservice/shop-ingress configured" in out, err
        assert "MM0001" not in err and "gateways[0]" not in err
        assert "warning: Gateway default/shop-gateway selector: no workload has the labels istio=ingressgateway" in err


async def test_services_and_workloads_are_known_in_their_namespaces(tmp_path):
    # catalog runs in namespace foo: a VirtualService in foo naming 'catalog' names it (no IST0101);
    # one in default naming 'catalog' does not, nor does a policy in default selecting app=catalog.
    in_foo = """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: catalog, namespace: foo}
spec:
  hosts: [catalog]
  http: [{route: [{destination: {host: catalog}}]}]
"""
    (tmp_path / "foo.yaml").write_text(in_foo)
    (tmp_path / "default.yaml").write_text(in_foo.replace("namespace: foo", "namespace: default"))
    (tmp_path / "policy.yaml").write_text(POLICY.replace("paymnets", "catalog"))
    async with run_control_plane(tmp_path / "home", ttl=30.0, warmup=0.0) as cp:
        async with aiohttp.ClientSession(trust_env=False) as http:
            async with http.post(cp.url + "/v1/register", json={
                    "service": "catalog", "version": "v1", "instance": "catalog-v1-0", "kind": "sidecar",
                    "namespace": "foo", "labels": {"app": "catalog"},
                    "addresses": {"app": None, "inbound": None, "outbound": None, "admin": "127.0.0.1:1"}}) as r:
                assert r.status == 200, await r.text()
        code, out, err = await run_cli("analyze", str(tmp_path / "foo.yaml"), home=tmp_path, control_url=cp.url)
        assert (code, out.strip()) == (0, f"✔ No validation issues found when analyzing the config in force and "
                                          f"{tmp_path / 'foo.yaml'}"), err
        code, out, err = await run_cli("analyze", str(tmp_path / "default.yaml"), str(tmp_path / "policy.yaml"),
                                       home=tmp_path, control_url=cp.url)
        assert "(VirtualService catalog.default) hosts[0]: host 'catalog' is not a service of the mesh" in out, out
        assert ("(AuthorizationPolicy lock-payments.default) selector: no workload in namespace 'default' has the "
                "labels app=catalog") in out, out
