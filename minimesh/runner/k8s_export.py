"""A lesson as Kubernetes + Istio: `minimesh export k8s LESSON [--out DIR]`.

The same lesson.yaml that `minimesh up` runs as processes and `minimesh
compose` as containers becomes what a real cluster runs:

    kubernetes.yaml   the namespace, labelled `istio-injection: enabled` so
                      istiod adds an Envoy sidecar to every pod; per
                      service a ServiceAccount (its SPIFFE identity,
                      spiffe://cluster.local/ns/NS/sa/SERVICE — the one
                      minimesh gave it) and a Service on port 80 (apps call
                      http://catalog, as here); per version a Deployment
                      labelled `app` and `version`, which is what
                      DestinationRule subsets select
    istio/            the lesson's Istio manifests, copied unchanged — the
                      point of minimesh speaking Istio's language: the
                      lesson-wide ones at the top, each step's in
                      istio/steps/N-name/ (steps replace each other's
                      VirtualServices, so apply one step at a time); a
                      step's TLS Secret for the ingress gateway (lesson 08:
                      a core v1 Secret in istio-system) travels with them

Every app runs the demo image (`minimesh:local`, built from
compose/Dockerfile; `kind load docker-image` puts it in a kind cluster)
with the lesson's command and environment. No HTTP_PROXY: in Kubernetes,
iptables rules that istio-init installs send the app's traffic through its
sidecar without the app knowing, so each app is told to call its peers
directly (CATALOG_URL=http://catalog, which the demo apps read). The output is deterministic, so it can be
committed and checked for drift like the compose files.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from minimesh.errors import UserError
from minimesh.runner.compose import APP_PORT, IMAGE, in_container
from minimesh.runner.topology import Lesson, VersionSpec, load_lesson

SERVICE_PORT = 80  # what apps call (http://catalog); the Service forwards to the app's APP_PORT


def namespace(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "labels": {"istio-injection": "enabled"}}}


def service_account(service: str, ns: str) -> dict:
    return {"apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": service, "namespace": ns, "labels": {"app": service}}}


def service(name: str, ns: str) -> dict:
    # The port's name says its protocol to Istio (protocol selection: "http" or "http-*").
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": ns, "labels": {"app": name, "service": name}},
            "spec": {"selector": {"app": name},
                     "ports": [{"name": "http", "port": SERVICE_PORT, "targetPort": APP_PORT}]}}


def deployment(lesson: Lesson, spec: VersionSpec, ns: str) -> dict:
    labels = {"app": spec.service, "version": spec.version, **spec.labels}
    env = [{"name": k, "value": str(v)} for k, v in sorted(spec.env.items())]
    # The demo apps call http://catalog through HTTP_PROXY here; there, iptables captures the plain call,
    # so each is told to call its peers directly (demo-services/shop.py: <NAME>_URL).
    where = {v.service: v.namespace for v in lesson.versions}
    peers = {name: name if where[name] == ns else f"{name}.{where[name]}.svc.cluster.local" for name in where}
    peers |= {o.host: o.host for o in lesson.outside}
    env += [{"name": f"{name.upper()}_URL", "value": f"http://{host}"} for name, host in peers.items()]
    env += [{"name": "HOST", "value": "0.0.0.0"}, {"name": "PORT", "value": str(APP_PORT)},
            {"name": "SERVICE", "value": spec.service}, {"name": "VERSION", "value": spec.version},
            # Each pod's own name, as minimesh names an instance (web-v1-0): answers say who served them.
            {"name": "INSTANCE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": f"{spec.service}-{spec.version}", "namespace": ns, "labels": labels},
        "spec": {
            "replicas": spec.replicas,
            "selector": {"matchLabels": {"app": spec.service, "version": spec.version}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "serviceAccountName": spec.service,
                    "containers": [{
                        "name": spec.service, "image": IMAGE, "imagePullPolicy": "IfNotPresent",
                        "command": in_container(lesson, spec.command), "env": env,
                        "ports": [{"name": "http", "containerPort": APP_PORT}],
                    }],
                },
            },
        },
    }


def kubernetes_objects(lesson: Lesson) -> list[dict]:
    """Every Kubernetes object of the lesson, in the order `kubectl apply` wants them.

    Each service lives in its lesson.yaml `namespace` (default `default`), as its identity does:
    spiffe://cluster.local/ns/NS/sa/SERVICE.
    """
    where = {v.service: v.namespace for v in lesson.versions}
    objects = [namespace(ns) for ns in dict.fromkeys(where.values())]
    for name in lesson.services:
        objects += [service_account(name, where[name]), service(name, where[name])]
    objects += [deployment(lesson, spec, spec.namespace) for spec in lesson.versions]
    return objects


def istio_files(lesson: Lesson) -> list[tuple[str, Path]]:
    """(where under the output, source file) for each manifest: the lesson's, then each step's."""
    files = [(f"istio/{Path(f).name}", Path(f)) for f in lesson.manifests]
    for number, step in enumerate(lesson.steps or [], 1):
        if isinstance(step, dict):
            folder = f"istio/steps/{number}-{step.get('name', 'step')}"
            files += [(f"{folder}/{name}", lesson.dir / name) for name in step.get("manifests", []) or []]
    return files


def render(objects: list[dict], header: str) -> str:
    return header + "---\n".join(yaml.safe_dump(o, sort_keys=False) for o in objects)


def export_k8s(lesson_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write the lesson's Kubernetes objects and Istio manifests under `out`; return it."""
    lesson = load_lesson(lesson_dir)
    out = Path(out) if out is not None else Path.cwd() / f"k8s-{lesson.dir.name}"
    if out.exists() and not out.is_dir():
        raise UserError(f"{out} is a file; --out names a directory to write into")
    out.mkdir(parents=True, exist_ok=True)
    header = (f"# {lesson.title}: lessons/{lesson.dir.name} on Kubernetes.\n"
              f"# Generated by `minimesh export k8s lessons/{lesson.dir.name}` — edit lesson.yaml, not this file.\n"
              "#   kubectl apply -f kubernetes.yaml; then a step's Istio manifests: kubectl apply -f istio/steps/1-…/\n")
    (out / "kubernetes.yaml").write_text(render(kubernetes_objects(lesson), header), encoding="utf-8")
    for where, path in istio_files(lesson):
        if not path.is_file():
            raise UserError(f"{path} is named in {lesson.dir / 'lesson.yaml'} but does not exist")
        (out / where).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, out / where)
    return out
