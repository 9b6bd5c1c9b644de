"""Is this manifest valid Istio? Checked against Istio's own CRD schemas.

The contract (DESIGN.md): every manifest minimesh accepts must also be a
valid Istio resource. `validate_istio` checks a document against the
OpenAPI schema in Istio's CustomResourceDefinitions, the way the Kubernetes
API server would with `kubectl apply --validate=strict`:

- jsonschema's Draft7Validator for types, enums and oneOf rules;
- a strict walk, because Kubernetes schemas do not say
  `additionalProperties: false` (the API server prunes unknown fields
  instead), so a misspelled `retriez:` would otherwise pass;
- the one CEL rule family that matters for our fields,
  `duration(self) >= duration('1ms')`, and the "no '*' in matchLabels"
  rules; other CEL rules are not evaluated.

`metadata` is Kubernetes ObjectMeta, not described by these schemas; only
its name is checked to exist.
"""

from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from minimesh.config import parse_duration

CRDS = Path(__file__).resolve().parents[1] / "../shared/reference/istio-crds.gen.yaml"


@lru_cache(maxsize=1)
def _schemas() -> dict[tuple[str, str], dict]:
    """(apiVersion, kind) -> openAPIV3Schema, parsed once (the file is ~900 KB)."""
    out = {}
    with open(CRDS, encoding="utf-8") as f:
        for crd in yaml.load_all(f, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
            if not crd:
                continue
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            for version in crd["spec"]["versions"]:
                out[(f"{group}/{version['name']}", kind)] = version["schema"]["openAPIV3Schema"]
    return out


def validate_istio(doc: dict) -> list[str]:
    """Problems that would make Kubernetes/Istio refuse `doc`; empty when valid."""
    if not isinstance(doc, dict):
        return ["document is not a mapping"]
    schema = _schemas().get((doc.get("apiVersion"), doc.get("kind")))
    if schema is None:
        return [f"unknown apiVersion/kind {doc.get('apiVersion')}/{doc.get('kind')}"]
    problems = []
    metadata = doc.get("metadata")
    if not isinstance(metadata, dict) or not metadata.get("name"):
        problems.append("metadata.name is required")
    body = {k: v for k, v in doc.items() if k != "metadata"}
    schema_minus_meta = dict(schema, properties={k: v for k, v in schema["properties"].items() if k != "metadata"})
    for error in jsonschema.Draft7Validator(schema_minus_meta).iter_errors(body):
        where = ".".join(str(p) for p in error.absolute_path) or "(root)"
        problems.append(f"{where}: {error.message}")
    for key in body:
        if key not in ("apiVersion", "kind") and key not in schema["properties"]:
            problems.append(f"{key}: unknown field")
    if "spec" in body:
        _strict_walk(body["spec"], schema["properties"]["spec"], "spec", problems)
    return problems


def _strict_walk(value: Any, schema: dict, path: str, problems: list[str]) -> None:
    for rule in schema.get("x-kubernetes-validations", ()):
        _check_cel(rule, value, path, problems)
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return
    if isinstance(value, dict):
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            if props is not None and key in props:
                _strict_walk(item, props[key], f"{path}.{key}", problems)
            elif isinstance(extra, dict):
                _strict_walk(item, extra, f"{path}.{key}", problems)
            elif extra is not True:
                problems.append(f"{path}.{key}: unknown field (not in Istio's schema)")
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            _strict_walk(item, schema["items"], f"{path}[{i}]", problems)


def _check_cel(rule: dict, value: Any, path: str, problems: list[str]) -> None:
    text = rule.get("rule", "")
    if text == "duration(self) >= duration('1ms')" and isinstance(value, str):
        try:
            ok = parse_duration(value) >= 0.001
        except ValueError:
            ok = False
        if not ok:
            problems.append(f"{path}: {rule.get('message', text)}")
    elif text == '!self.contains("*")' and isinstance(value, str) and "*" in value:
        problems.append(f"{path}: {rule.get('message', text)}")
    elif text == 'self.all(key, !key.contains("*"))' and isinstance(value, dict):
        if any("*" in k for k in value):
            problems.append(f"{path}: {rule.get('message', text)}")
    elif text == "self.all(key, key.size() != 0)" and isinstance(value, dict):
        if any(k == "" for k in value):
            problems.append(f"{path}: {rule.get('message', text)}")
