"""YAML with line numbers: load a document and remember where every key was.

A user who mistypes a key in lesson.yaml should be told the file and the line,
the way `kubectl apply` names the field it rejects. PyYAML throws line numbers
away when it builds Python objects, so we keep its node tree as well: the data
comes from the ordinary safe constructor, and a parallel walk over the nodes
records the line of each path (`("services", "web", "versions")` → 7).
"""

from pathlib import Path

import yaml

from minimesh.errors import ConfigError

Path_ = tuple  # a path into the document: keys and list indexes


def load_with_lines(text: str, source: str) -> tuple[object, dict[Path_, int]]:
    """Parse one YAML document; return (data, {path: 1-based line})."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark else None
        raise ConfigError(f"not valid YAML: {e.problem or e}", source=source, line=line) from e
    except yaml.YAMLError as e:
        raise ConfigError(f"not valid YAML: {e}", source=source) from e
    finally:
        loader.dispose()
    lines: dict[Path_, int] = {}
    if node is not None:
        _walk(node, (), lines)
    return data, lines


def load_file_with_lines(path: Path) -> tuple[object, dict[Path_, int]]:
    return load_with_lines(path.read_text(encoding="utf-8"), str(path))


def _walk(node: yaml.Node, path: Path_, lines: dict[Path_, int]) -> None:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            # The line of a key is where the key is written, not where its value starts.
            lines[path + (key,)] = key_node.start_mark.line + 1
            _walk(value_node, path + (key,), lines)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, path + (i,), lines)


def line_of(lines: dict[Path_, int], path: Path_) -> int | None:
    """The line of `path`, or of its nearest ancestor that has one."""
    while path:
        if path in lines:
            return lines[path]
        path = path[:-1]
    return lines.get(())
