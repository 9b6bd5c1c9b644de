"""The config store: the Istio resources in force, with a version, kept on disk.

Resources are keyed by (kind, namespace, name), like objects in the
Kubernetes API server. An apply is all or nothing: every manifest is parsed
with `minimesh.config.parse_resource`; one problem and nothing changes, so
the previous config stays in force (DESIGN.md, "Bad input and faults").
Then the whole config as it *would* be is analyzed across resources
(`minimesh.config.analyze`: a route to a subset no DestinationRule defines); as
on Istio those are accepted, and the problems come back as warnings, the
way `istioctl analyze` reports IST0101 while requests get 503 NC.

The version is a plain integer that bumps once per apply that changed
something; re-applying the same file is a no-op ("unchanged"), as with
`kubectl apply`. The store is written to `<home>/control/config.json` with
write-to-temp, fsync, rename, so a crash mid-write leaves either the old file
or the new one, never half of one.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from minimesh import config as mesh_config
from minimesh.config import DEFAULT_NAMESPACE
from minimesh.errors import ConfigError, UserError

log = logging.getLogger("minimesh.control")

Key = tuple[str, str, str]  # (kind, namespace, name)


def atomic_write(path: Path, text: str) -> None:
    """Replace `path` with `text` so a reader never sees a partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def describe(key: Key) -> str:
    kind, namespace, name = key
    return f"{kind}/{name}" if namespace == DEFAULT_NAMESPACE else f"{kind}/{namespace}/{name}"


def _cross_resource_warnings(parsed: list) -> list[str]:
    """What the whole config gets wrong across resources (e.g. a route to an undefined subset): warned, not refused."""
    return [str(m) for m in mesh_config.analyze(parsed)]


@dataclass(frozen=True)
class ApplyResult:
    version: int
    changed: bool
    results: list[dict]  # [{"kind", "name", "action"}]
    warnings: tuple[str, ...] = ()  # cross-resource problems Istio accepts too (istioctl analyze's)


class ConfigStore:
    """The resources in force; every mutation is validated, persisted, then swapped in."""

    def __init__(self, path: Path):
        self.path = path
        self.version = 0
        self._docs: dict[Key, dict] = {}
        self._parsed: dict[Key, object] = {}

    @classmethod
    def load(cls, path: Path) -> "ConfigStore":
        store = cls(path)
        if not path.exists():
            return store
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            store.version = int(data["version"])
            for doc in data["resources"]:
                item = mesh_config.parse_resource(doc, str(path))
                store._parsed[item.key], store._docs[item.key] = item, item.manifest
        except (ValueError, KeyError, TypeError, ConfigError) as e:
            raise UserError(f"{path}: stored config cannot be loaded ({e}); fix or remove the file") from e
        log.info("loaded config version %d (%d resources) from %s", store.version, len(store._docs), path)
        return store

    def resources(self, kind: str | None = None) -> list[dict]:
        keys = sorted(k for k in self._docs if kind is None or k[0].lower() == kind.lower())
        return [self._docs[k] for k in keys]

    def apply(self, manifests: list, source: str = "") -> ApplyResult:
        """Validate every manifest and the whole result; change all or nothing."""
        if not isinstance(manifests, list):
            raise ConfigError("'manifests' must be a list", source=source)
        docs, parsed = dict(self._docs), dict(self._parsed)
        results = []
        for doc in manifests:
            item = mesh_config.parse_resource(doc, source)
            key, manifest = item.key, item.manifest  # the manifest as Istio would store it
            action = ("created" if key not in docs else "unchanged" if docs[key] == manifest else "configured")
            docs[key], parsed[key] = manifest, item
            results.append({"kind": key[0], "name": key[2], "action": action})
        warnings = tuple(_cross_resource_warnings(list(parsed.values())))
        changed = any(r["action"] != "unchanged" for r in results)
        if changed:
            self._commit(docs, parsed)
            log.info("apply %s: version %d: %s", source or "<api>", self.version,
                     ", ".join(f"{r['kind']}/{r['name']} {r['action']}" for r in results))
        else:
            log.info("apply %s: unchanged, version stays %d", source or "<api>", self.version)
        return ApplyResult(self.version, changed, results, warnings)

    def delete(self, kind: str, name: str, namespace: str = DEFAULT_NAMESPACE) -> Key | None:
        """Remove one resource; None if there is none. Dangling references are allowed, as on Istio (503 NC)."""
        key = next((k for k in self._docs if k[0].lower() == kind.lower() and k[1:] == (namespace, name)), None)
        if key is None:
            return None
        docs = {k: v for k, v in self._docs.items() if k != key}
        parsed = {k: v for k, v in self._parsed.items() if k != key}
        self._commit(docs, parsed)
        log.info("delete %s: version %d", describe(key), self.version)
        return key

    def _commit(self, docs: dict, parsed: dict) -> None:
        # Persist first: if the disk write fails, memory still matches the file.
        version = self.version + 1
        payload = {"version": version, "resources": [docs[k] for k in sorted(docs)]}
        atomic_write(self.path, json.dumps(payload, indent=2, sort_keys=True) + "\n")
        self.version, self._docs, self._parsed = version, docs, parsed
