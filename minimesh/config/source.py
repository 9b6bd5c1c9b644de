"""Read YAML and remember where every key came from.

A plain `yaml.safe_load` forgets line numbers, and an error that says only
"spec.http[0].retries.attempts is wrong" sends the reader hunting. So the text
is first *composed* into YAML nodes (which carry their marks), then built into
plain Python values, while a side table records the 1-based line of every key
and list item, keyed by its path: ("spec", "http", 0, "retries").

Values are read the way Kubernetes reads them, with one deliberate change from
PyYAML's defaults: an unquoted date stays a string (Kubernetes has no timestamp
type in YAML, and a manifest must round-trip through JSON).

PyYAML is imported at the first read, not with this module: a sidecar uses
the config package on snapshots (JSON) and never reads YAML (1.3 MB of
resident memory in every sidecar, issue 16).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from minimesh.errors import ConfigError

Path = tuple[str | int, ...]


@functools.cache
def _manifest_loader() -> type:
    """PyYAML's SafeLoader without the timestamp resolver."""
    import yaml

    class ManifestLoader(yaml.SafeLoader):
        pass

    ManifestLoader.yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    return ManifestLoader


@dataclass(frozen=True)
class Document:
    """One YAML document: its plain value and the line of each path in it."""

    value: Any
    lines: dict[Path, int]


def read_documents(text: str, source: str) -> list[Document]:
    """Split multi-document YAML into Documents; empty documents are skipped."""
    import yaml

    loader = _manifest_loader()(text)
    documents = []
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            lines: dict[Path, int] = {}
            _record_lines(node, (), lines, source, set())
            value = loader.construct_document(node)
            if value is not None:
                documents.append(Document(value, lines))
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark else None
        problem = " ".join(str(e.problem or e.context or "invalid YAML").split())
        raise ConfigError(f"YAML syntax error: {problem}", source=source, line=line) from e
    except yaml.YAMLError as e:
        raise ConfigError(f"YAML error: {' '.join(str(e).split())}", source=source) from e
    finally:
        loader.dispose()
    return documents


def _record_lines(node, path: Path, lines: dict[Path, int], source: str, visited: set[int]) -> None:
    import yaml

    lines.setdefault(path, node.start_mark.line + 1)
    if id(node) in visited:
        return  # an alias: walk its anchor once, so "billion laughs" YAML stays cheap
    visited.add(id(node))
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.value == "<<":
                continue  # merge keys and complex keys: their children fall back to the parent's line
            key, line = key_node.value, key_node.start_mark.line + 1
            if key in seen:
                # PyYAML would silently keep the last one; Kubernetes refuses.
                raise ConfigError(
                    f"duplicate key '{key}' (first at line {seen[key]}); remove one of them",
                    source=source,
                    line=line,
                    field=dotted(path + (key,)),
                )
            seen[key] = line
            lines[path + (key,)] = line
            _record_lines(value_node, path + (key,), lines, source, visited)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines[path + (index,)] = item.start_mark.line + 1
            _record_lines(item, path + (index,), lines, source, visited)


def dotted(path: Path) -> str:
    """('spec', 'http', 0, 'retries') -> 'spec.http[0].retries'."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def read_file(path) -> Document:
    """One YAML document from a file (an empty file reads as None); see read_documents."""
    from pathlib import Path as FilePath

    documents = read_documents(FilePath(path).read_text(encoding="utf-8"), str(path))
    if len(documents) > 1:
        raise ConfigError("holds more than one YAML document; expected one", source=str(path))
    return documents[0] if documents else Document(None, {})


def line_of(lines: dict[Path, int], path: Path) -> int | None:
    """The line of `path`, or of its nearest ancestor that has one."""
    while path:
        if path in lines:
            return lines[path]
        path = path[:-1]
    return lines.get(())
