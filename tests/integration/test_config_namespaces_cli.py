"""`minimesh get -n` and `delete -n`: kubectl's namespace flag, against a real control plane.

A resource applied with `metadata.namespace: foo` is deleted with
`minimesh delete KIND NAME -n foo`, as with kubectl or istioctl; without
`-n` the namespace is `default`, and a name that exists only elsewhere is
refused in one line naming the namespace and the command that works.
"""

import asyncio

import pytest

from tests.support.control import run_control_plane
from tests.support.stack import cli

pytestmark = pytest.mark.timeout(90)


def vs(namespace):
    return f"""apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: catalog, namespace: {namespace}}}
spec:
  hosts: [catalog]
  http: [{{route: [{{destination: {{host: catalog}}}}]}}]
"""


async def test_delete_and_get_take_a_namespace(tmp_path):
    (tmp_path / "foo.yaml").write_text(vs("foo"))
    (tmp_path / "bar.yaml").write_text(vs("bar"))
    gateway = tmp_path / "gateway.yaml"
    gateway.write_text("""apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: shop-gateway, namespace: foo}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: 80, protocol: HTTP}, hosts: ['*']}]
""")
    async with run_control_plane(tmp_path / "home", ttl=30.0, warmup=0.0) as cp:
        def run(*args):
            return asyncio.to_thread(cli, *args, "--control", cp.url, home=tmp_path / "home", timeout=60)

        r = await run("apply", str(tmp_path / "foo.yaml"), str(tmp_path / "bar.yaml"), str(gateway))
        assert r.returncode == 0, r.stderr
        # get -n: that namespace only; without it, every namespace.
        r = await run("get", "vs", "-n", "foo")
        assert r.returncode == 0 and "namespace: foo" in r.stdout and "namespace: bar" not in r.stdout, r.stdout
        assert "namespace: bar" in (await run("get", "vs")).stdout
        r = await run("get", "vs", "-n", "default")
        assert (r.returncode, r.stdout, r.stderr.strip()) == (0, "", "No resources found in default namespace.")
        # delete without -n means default: refused in one line that says where it is and what to run.
        r = await run("delete", "vs", "catalog")
        assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert ("no VirtualService named 'catalog' in namespace 'default'; there is one in namespace 'bar', 'foo': "
                "`minimesh delete virtualservice catalog -n bar`") in r.stderr
        # -n foo deletes foo's and leaves bar's.
        r = await run("delete", "virtualservice", "catalog", "-n", "foo")
        assert r.returncode == 0 and "virtualservice/catalog deleted (namespace foo)" in r.stdout, r.stderr
        assert "namespace: foo" not in (await run("get", "vs")).stdout
        r = await run("delete", "vs", "catalog", "--namespace", "bar")
        assert r.returncode == 0, r.stderr
        assert (await run("get", "vs")).stderr.strip() == "No resources found."
        # Gateways too (kubectl's short name gw), and a name in no namespace: the control plane's 404, one line.
        r = await run("delete", "gw", "shop-gateway", "-n", "foo")
        assert r.returncode == 0 and "gateway/shop-gateway deleted (namespace foo)" in r.stdout, r.stderr
        r = await run("delete", "vs", "catalog", "-n", "foo")
        assert r.returncode == 1 and r.stderr.strip().splitlines() == [
            "minimesh: no VirtualService named 'catalog' in namespace 'foo'"], r.stderr
