"""The `exported` expectation: a lesson, written out for Kubernetes, is something a cluster takes.

Lesson 09 cannot start a cluster in CI, so its check works offline on what
`minimesh export k8s` writes:

- every Kubernetes object validates against the API server's own OpenAPI
  schema, strictly (kubernetes-validate ships the schemas: no cluster, no
  network), and the Deployments, Services and ServiceAccounts fit
  together: selectors find pods, each pod runs as its service's account;
- every Istio manifest is the lesson's own file, byte for byte, and loads
  in minimesh — so it is valid Istio (DESIGN.md: minimesh accepts only
  what Istio would).

Without kubernetes-validate installed the check fails and says how to get
it: a check that cannot look must not pass.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import yaml

from minimesh.config import load_file
from minimesh.errors import ConfigError, UserError
from minimesh.lesson.verdict import Verdict

KUBERNETES_VERSION = "1.30.0"


def judge_export(lesson_ref: str) -> Verdict:
    from minimesh.lesson.catalog import find_lesson
    from minimesh.runner.k8s_export import export_k8s, istio_files
    from minimesh.runner.topology import load_lesson

    what = f"lessons/{lesson_ref} exports to valid Kubernetes + Istio"
    try:
        lesson_dir = find_lesson(lesson_ref)
        with tempfile.TemporaryDirectory(prefix="minimesh-export-") as out:
            export_k8s(lesson_dir, out)
            objects = list(yaml.safe_load_all((Path(out) / "kubernetes.yaml").read_text(encoding="utf-8")))
            problems = kubernetes_problems(objects)
            copied = istio_files(load_lesson(lesson_dir))
            for where, source in copied:
                if (Path(out) / where).read_bytes() != source.read_bytes():
                    problems.append(f"{where} differs from {source.name}")
                load_file(Path(out) / where)  # ConfigError: not something minimesh (or Istio) accepts
                # A core object among them (a Gateway's TLS Secret) is Kubernetes': its schema checks it.
                problems += kubernetes_problems([d for d in yaml.safe_load_all((Path(out) / where).read_text(
                    encoding="utf-8")) if isinstance(d, dict) and "istio.io/" not in str(d.get("apiVersion"))])
    except (UserError, ConfigError) as e:
        return Verdict(False, what, str(e))
    except ImportError:
        return Verdict(False, what, "kubernetes-validate is not installed",
                       "run: pip install kubernetes-validate   (or: pip install -e '.[test]')")
    detail = (f"{len(objects)} Kubernetes objects (schema of Kubernetes {KUBERNETES_VERSION}, strict), "
              f"{len(copied)} Istio manifests")
    return Verdict(not problems, what, "; ".join(problems[:3]) if problems else detail)


def kubernetes_problems(objects: list[dict]) -> list[str]:
    import kubernetes_validate  # a test extra; ImportError is reported by the caller

    problems = []
    for o in objects:
        try:
            kubernetes_validate.validate(o, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as e:
            problems.append(f"{o.get('kind')}/{o.get('metadata', {}).get('name')}: {e.message}")
    accounts = {o["metadata"]["name"] for o in objects if o["kind"] == "ServiceAccount"}
    services = [o for o in objects if o["kind"] == "Service"]
    pods = [o["spec"]["template"] for o in objects if o["kind"] == "Deployment"]
    for o in objects:
        if o["kind"] != "Deployment":
            continue
        name, labels = o["metadata"]["name"], o["spec"]["template"]["metadata"]["labels"]
        if not o["spec"]["selector"]["matchLabels"].items() <= labels.items():
            problems.append(f"Deployment/{name}: its selector does not match its pods' labels")
        if o["spec"]["template"]["spec"].get("serviceAccountName") not in accounts:
            problems.append(f"Deployment/{name}: its pods run as a ServiceAccount that is not exported")
    for s in services:
        if not any(s["spec"]["selector"].items() <= p["metadata"]["labels"].items() for p in pods):
            problems.append(f"Service/{s['metadata']['name']}: selects no pod")
    return problems
