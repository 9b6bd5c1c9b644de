"""What every Istio resource has: a kind, a name, a namespace, its manifest.

Also the two small values shared by several kinds: `Labels`, an immutable
label map (a DestinationRule subset's labels, a policy's selector), and
`short_host`, which turns Kubernetes' long service names into the short ones
minimesh's registry uses.
"""

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

DEFAULT_NAMESPACE = "default"
ROOT_NAMESPACE = "istio-system"  # Istio's root namespace: its selector-less policies are mesh-wide
CLUSTER_DOMAIN = "svc.cluster.local"

# Kubernetes' full name for a service in minimesh's one namespace.
_CLUSTER_SUFFIX = f".{DEFAULT_NAMESPACE}.svc.cluster.local"


def short_host(host: str) -> str:
    """'catalog.default.svc.cluster.local' -> 'catalog'; anything else unchanged.

    Istio reads a bare "catalog" as the service in the resource's own
    namespace; the two spellings name the same service, so minimesh stores
    one. A shorter form like "catalog.default" is *not* expanded, because
    Istio does not expand it either (it would be an external host).
    """
    host = host.lower()
    return host[: -len(_CLUSTER_SUFFIX)] if host.endswith(_CLUSTER_SUFFIX) else host


class Labels(Mapping[str, str]):
    """A frozen, hashable label map; compares equal to a dict with the same items."""

    __slots__ = ("_items",)

    def __init__(self, items: Mapping[str, str] | None = None):
        self._items = dict(items or {})

    def __getitem__(self, key: str) -> str:
        return self._items[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return hash(frozenset(self._items.items()))

    def __repr__(self) -> str:
        return f"Labels({self._items!r})"

    def selects(self, workload: Mapping[str, str]) -> bool:
        """Kubernetes selector semantics: every label here is on the workload (empty selects all)."""
        return all(workload.get(key) == value for key, value in self._items.items())


@dataclass(frozen=True, kw_only=True)
class Resource:
    """Base of the four kinds. `manifest` is the original document, for storing and `minimesh get`."""

    kind: ClassVar[str] = ""
    name: str
    namespace: str = DEFAULT_NAMESPACE
    manifest: dict[str, Any] = field(default_factory=dict, compare=False, hash=False, repr=False)
    # exportTo (VirtualService, DestinationRule): the namespaces that see it; "*" everyone, "." its own.
    export_to: tuple[str, ...] = ("*",)
    # "file:line: field: message" for each accepted-but-surprising setting (`minimesh apply` prints them).
    warnings: tuple[str, ...] = field(default=(), compare=False, hash=False, repr=False)

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.kind, self.namespace, self.name)
