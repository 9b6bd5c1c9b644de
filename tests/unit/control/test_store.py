"""The config store on its own: all-or-nothing apply, versions, persistence, reload."""

import json

import pytest

from minimesh.control.store import ConfigStore
from minimesh.errors import ConfigError, UserError


def dr(*subsets, name="pricing"):
    return {"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule", "metadata": {"name": name},
            "spec": {"host": "pricing", "subsets": [{"name": s, "labels": {"version": s}} for s in subsets]}}


def vs(subset):
    return {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": {"name": "pricing"},
            "spec": {"hosts": ["pricing"], "http": [{"route": [{"destination": {"host": "pricing", "subset": subset}}]}]}}


@pytest.fixture
def path(tmp_path):
    return tmp_path / "control" / "config.json"


@pytest.mark.parametrize("applies, version, actions", [
    ([[dr("v1")]], 1, ["created"]),
    ([[dr("v1")], [dr("v1")]], 1, ["unchanged"]),
    ([[dr("v1")], [dr("v1", "v2")]], 2, ["configured"]),
    ([[dr("v1")], [dr("v1"), vs("v1")]], 2, ["unchanged", "created"]),
    ([[dr("v1"), dr("v1", name="other")]], 1, ["created", "created"]),
])
def test_versions_bump_once_per_changing_apply(path, applies, version, actions):
    store = ConfigStore(path)
    for manifests in applies:
        result = store.apply(manifests, "t.yaml")
    assert store.version == version
    assert [r["action"] for r in result.results] == actions


def test_a_route_to_an_undefined_subset_is_applied_with_a_warning_as_on_istio(path):
    store = ConfigStore(path)
    result = store.apply([dr("v1"), vs("v2")], "a.yaml")
    assert store.version == 1 and result.changed
    [warning] = result.warnings
    assert "subset 'v2' of host 'pricing' is not defined" in warning
    assert warning.endswith("(istioctl analyze: IST0101 ReferencedResourceNotFound)")
    # Deleting the DestinationRule a route names is allowed too (Istio: 503 NC from then on).
    store.delete("DestinationRule", "pricing")
    assert store.version == 2


@pytest.mark.parametrize("bad", [
    [dr("v1"), {**vs("v1"), "kind": "EnvoyFilter"}],
    [dr("v1"), "text"],
])
def test_invalid_apply_changes_nothing_in_memory_or_on_disk(path, bad):
    store = ConfigStore(path)
    store.apply([dr("v1")], "good.yaml")
    on_disk = path.read_text()
    with pytest.raises(ConfigError, match="bad.yaml"):
        store.apply(bad, "bad.yaml")
    assert store.version == 1 and store.resources() == [dr("v1")]
    assert path.read_text() == on_disk


def test_reload_keeps_version_and_resources(path):
    store = ConfigStore(path)
    store.apply([dr("v1", "v2"), vs("v2")], "a.yaml")
    store.delete("VirtualService", "pricing")
    again = ConfigStore.load(path)
    assert again.version == 2 and again.resources() == [dr("v1", "v2")]
    assert json.loads(path.read_text()) == {"version": 2, "resources": [dr("v1", "v2")]}


def test_missing_file_is_an_empty_store(path):
    assert ConfigStore.load(path).version == 0


def test_corrupt_file_is_one_clear_error(path):
    path.parent.mkdir(parents=True)
    path.write_text("{half a file")
    with pytest.raises(UserError, match="fix or remove the file"):
        ConfigStore.load(path)


def test_get_filters_by_kind_case_insensitively(path):
    store = ConfigStore(path)
    store.apply([dr("v1"), vs("v1")], "a.yaml")
    assert store.resources("virtualservice") == [vs("v1")]
