"""`minimesh export k8s`: every lesson, exported, is valid Kubernetes and valid Istio.

Kubernetes objects are checked with kubernetes-validate (the API server's
OpenAPI schemas, shipped in the package: no cluster, no network), strictly,
so a misspelt field fails; Istio objects against Istio's CRDs
(tests/istio_schema.py). Then the things a schema cannot see: a Deployment's
selector matches its pods, each pod runs as its service's account, the
Service finds the pods, the manifests are byte-for-byte the lesson's.
"""

import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from minimesh.runner.k8s_export import export_k8s, kubernetes_objects
from minimesh.runner.topology import load_lesson
from tests.istio_schema import validate_istio

ROOT = Path(__file__).resolve().parents[3]
LESSONS = sorted(p.parent for p in (ROOT / "lessons").glob("*/lesson.yaml"))
K8S_VERSION = "1.30.0"  # kind's node images of 2024-2025 run 1.29-1.33


def k8s_problems(doc: dict) -> list[str]:
    try:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError as e:
        return [f"{doc['kind']}/{doc['metadata']['name']}: {e.message} at {list(e.path)}"]
    return []


@pytest.mark.parametrize("lesson_dir", LESSONS, ids=lambda p: p.name)
def test_every_exported_object_validates(lesson_dir, tmp_path):
    out = export_k8s(lesson_dir, tmp_path / "out")
    objects = list(yaml.safe_load_all((out / "kubernetes.yaml").read_text()))
    assert [p for o in objects for p in k8s_problems(o)] == []
    istio = sorted((out / "istio").rglob("*.yaml"))
    assert istio or not load_lesson(lesson_dir).manifests
    for path in istio:
        for doc in yaml.safe_load_all(path.read_text()):
            # A Gateway's TLS Secret (lesson 08) is core Kubernetes: kubernetes-validate checks it.
            is_istio = "istio.io/" in doc["apiVersion"]
            assert (validate_istio(doc) if is_istio else k8s_problems(doc)) == [], path


def test_a_tls_secret_is_exported_and_validated_as_kubernetes(tmp_path):
    out = export_k8s(ROOT / "lessons" / "08-ingress-egress", tmp_path / "out")
    (secret,) = [d for p in (out / "istio").rglob("*.yaml") for d in yaml.safe_load_all(p.read_text())
                 if d["kind"] == "Secret"]
    assert secret["type"] == "kubernetes.io/tls" and secret["metadata"]["namespace"] == "istio-system"
    assert k8s_problems(secret) == []
    assert k8s_problems({**secret, "typo": 1})  # strict: the schema can say no


def test_validation_can_fail():
    # A misspelt field and a wrong type: kubernetes-validate must say no, offline.
    [ns, *rest] = kubernetes_objects(load_lesson(LESSONS[0]))
    bad = [o for o in rest if o["kind"] == "Deployment"][0]
    bad["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Never"
    assert k8s_problems(bad) and "imagePullPolicyy" in k8s_problems(bad)[0]
    assert k8s_problems({**ns, "metadata": {"name": 5}})


@pytest.mark.parametrize("lesson_dir", LESSONS, ids=lambda p: p.name)
def test_what_a_schema_cannot_see(lesson_dir, tmp_path):
    lesson = load_lesson(lesson_dir)
    objects = kubernetes_objects(lesson)
    by_kind: dict[str, list[dict]] = {}
    for o in objects:
        by_kind.setdefault(o["kind"], []).append(o)
    namespaces = {v.namespace for v in lesson.versions}
    assert {n["metadata"]["name"] for n in by_kind["Namespace"]} == namespaces
    assert all(n["metadata"]["labels"] == {"istio-injection": "enabled"} for n in by_kind["Namespace"])
    where = {v.service: v.namespace for v in lesson.versions}
    assert all(o["metadata"]["namespace"] == where[o["metadata"]["name"].rsplit("-", 1)[0]
                                                    if o["kind"] == "Deployment" else o["metadata"]["name"]]
               for o in objects if o["kind"] != "Namespace")
    accounts = {a["metadata"]["name"] for a in by_kind["ServiceAccount"]}
    services = {s["metadata"]["name"]: s for s in by_kind["Service"]}
    assert accounts == set(services) == set(lesson.services)
    replicas = {}
    for d in by_kind["Deployment"]:
        pod = d["spec"]["template"]
        labels = pod["metadata"]["labels"]
        # The selector finds the pods; subsets select on version; identity follows the service account.
        assert d["spec"]["selector"]["matchLabels"].items() <= labels.items()
        assert {"app", "version"} <= labels.keys()
        assert pod["spec"]["serviceAccountName"] == labels["app"]
        assert services[labels["app"]]["spec"]["selector"].items() <= labels.items()
        container = pod["spec"]["containers"][0]
        assert container["ports"][0]["containerPort"] == services[labels["app"]]["spec"]["ports"][0]["targetPort"]
        assert not any(e["name"].upper() == "HTTP_PROXY" for e in container["env"])  # iptables does it there
        # ... so the demo apps call their peers directly, by the Service's name (shop.py's <NAME>_URL).
        urls = {e["name"]: e.get("value") for e in container["env"] if e["name"].endswith("_URL")}
        mine = d["metadata"]["namespace"]
        assert all(urls[f"{s.upper()}_URL"] == (f"http://{s}" if where[s] == mine
                                                 else f"http://{s}.{where[s]}.svc.cluster.local")
                   for s in lesson.services), urls
        assert (ROOT / container["command"][1]).is_file(), container["command"]  # a path in the image's checkout
        replicas[(labels["app"], labels["version"])] = d["spec"]["replicas"]
    assert replicas == {(v.service, v.version): v.replicas for v in lesson.versions}


def test_istio_manifests_are_copied_unchanged_step_by_step(tmp_path):
    lesson_dir = ROOT / "lessons" / "03-canary"
    out = export_k8s(lesson_dir, tmp_path / "canary")
    steps = sorted((out / "istio" / "steps").iterdir())
    assert [s.name.split("-", 1)[0] for s in steps] == [str(n) for n in range(1, len(steps) + 1)]
    for path in (out / "istio").rglob("*.yaml"):
        assert path.read_bytes() == (lesson_dir / path.name).read_bytes()


def test_the_cli_exports_and_refuses_a_file_as_out(tmp_path):
    cli = [sys.executable, "-m", "minimesh.cli", "export", "k8s", str(ROOT / "lessons" / "01-hello-mesh")]
    r = subprocess.run([*cli, "--out", str(tmp_path / "hello")], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "hello" / "kubernetes.yaml").is_file()
    (tmp_path / "taken").write_text("x")
    r = subprocess.run([*cli, "--out", str(tmp_path / "taken")], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "is a file" in r.stderr and "Traceback" not in r.stderr


def test_a_service_in_another_namespace_is_exported_there_and_called_by_its_fqdn():
    from minimesh.runner.topology import parse_lesson

    data = {"title": "t", "services": {
        "web": {"versions": {"v1": {"command": ["python", "demo-services/web.py"]}}},
        "catalog": {"namespace": "shop", "versions": {"v1": {"command": ["python", "demo-services/catalog.py"]}}}}}
    lesson = parse_lesson(data, {}, source="lesson.yaml", lesson_dir=ROOT / "lessons" / "01-hello-mesh", cwd=ROOT)
    objects = kubernetes_objects(lesson)
    assert [p for o in objects for p in k8s_problems(o)] == []
    assert sorted(o["metadata"]["name"] for o in objects if o["kind"] == "Namespace") == ["default", "shop"]
    placed = {(o["kind"], o["metadata"]["name"]): o["metadata"].get("namespace") for o in objects}
    assert placed[("ServiceAccount", "catalog")] == placed[("Deployment", "catalog-v1")] == "shop"
    web = next(o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == "web-v1")
    env = {e["name"]: e.get("value") for e in web["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["CATALOG_URL"] == "http://catalog.shop.svc.cluster.local" and env["WEB_URL"] == "http://web"
