"""The one YAML loader for everything evalkit reads (routing configs, fleet files, policies).

``yaml.safe_load`` is safe against code execution, not against a small file
that costs a lot to use:

* **alias bombs** ("billion laughs"): nine lines of ``&a``/``*a`` expand to
  hundreds of millions of nodes for any code that walks the data;
* **recursive aliases** (``a: &a [*a]``): a list that contains itself, which
  ends every walk in ``RecursionError``;
* **deep nesting**: thousands of ``[`` overflow Python's stack;
* **huge integers**: a 5,000-digit integer is a ``ValueError`` from deep
  inside the parser (Python refuses to convert it), a 5,000-digit hex integer
  is silently accepted.

:func:`load_yaml` composes the document once, refuses those while composing
(before any data is built), and returns the data together with a path → line
index (``router.routes.code.targets[1]`` → 17) built without expanding
aliases: a path below an alias has no entry of its own and
:meth:`YamlDocument.line` answers with its nearest indexed ancestor. Every
problem is a :class:`~evalkit.errors.ConfigError` naming the file, the line
and, where there is one, the YAML path. Non-UTF-8 input is refused with the
byte offset; a key written twice in one mapping is refused too (YAML would
silently keep the last one).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from .errors import ConfigError

__all__ = ["MAX_BYTES", "MAX_DEPTH", "MAX_INT_DIGITS", "MAX_NODES", "YamlDocument", "line_of", "load_yaml",
           "load_yaml_file", "read_bounded"]

MAX_NODES = 100_000
"""Nodes the data may have with every alias expanded (real configs have hundreds)."""
MAX_DEPTH = 64
"""Nesting levels, aliases expanded (real configs have fewer than ten)."""
MAX_INT_DIGITS = 100
"""Characters an integer may be written with (no count, price or limit needs more than twenty)."""
MAX_BYTES = 16 << 20
"""Bytes :func:`load_yaml_file` reads before refusing the file."""

_LAST_STEP = re.compile(r"(\.[^.\[]*|\[\d+\])$")


@dataclass(frozen=True)
class YamlDocument:
    """Parsed YAML data, the file it came from, and where each YAML path is written (1-based lines)."""

    data: Any
    lines: Mapping[str, int] = field(default_factory=dict)
    file: str | None = None

    def line(self, path: str) -> int | None:
        """The line of ``path``, else of its nearest indexed ancestor (paths below aliases have none)."""
        return line_of(self.lines, path)

    def error(self, path: str, message: str) -> ConfigError:
        """A :class:`ConfigError` about the value at ``path``."""
        return ConfigError(message, file=self.file, line=self.line(path), field=path or None)


def line_of(lines: Mapping[str, int], path: str) -> int | None:
    """``lines[path]``, else the line of the nearest ancestor path that has one."""
    while True:
        if path in lines:
            return lines[path]
        shorter = _LAST_STEP.sub("", path)
        if shorter == path or not path:
            return None
        path = shorter


def load_yaml_file(path: str | Path, *, what: str = "file", max_bytes: int = MAX_BYTES,
                   **limits: int) -> YamlDocument:
    """:func:`load_yaml` of a file; ``what`` names it in errors (``cannot read routing config: ...``)."""
    return load_yaml(read_bounded(path, what=what, max_bytes=max_bytes), file=str(path), **limits)


def read_bounded(path: str | Path, *, what: str = "file", max_bytes: int = MAX_BYTES) -> bytes:
    """The bytes of a config file, or a ConfigError when it cannot be read or is over ``max_bytes``."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            data = handle.read(max_bytes + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read {what}: {exc.strerror or exc}", file=str(path)) from None
    if len(data) > max_bytes:
        raise ConfigError(f"{what} is larger than {max_bytes // (1 << 20)} MiB; refusing to read it",
                          file=str(path))
    return data


def load_yaml(source: str | bytes, *, file: str | None = None, max_nodes: int = MAX_NODES,
              max_depth: int = MAX_DEPTH, max_int_digits: int = MAX_INT_DIGITS) -> YamlDocument:
    """One YAML document (bytes must be UTF-8) as data plus its line index, or a located ConfigError."""
    import yaml

    text = _utf8(source, file) if isinstance(source, bytes) else source
    loader = _Loader(text, file, max_nodes=max_nodes, max_depth=max_depth, max_int_digits=max_int_digits)
    try:
        node = loader.get_single_node()
        data = None if node is None else loader.construct_document(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        line = mark.line + 1 if mark else None
        raise ConfigError(f"not valid YAML: {problem}", file=file, line=line) from None
    finally:
        loader.dispose()
    return YamlDocument(data, loader.lines, file)


def _utf8(data: bytes, file: str | None) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError(f"not valid UTF-8: byte {exc.start} (0x{data[exc.start]:02x}) {exc.reason}; "
                          "save the file as UTF-8", file=file, line=line) from None


def _loader_class() -> type:
    """The SafeLoader subclass, built on first use so ``import evalkit`` does not import yaml."""
    import yaml
    from yaml.nodes import MappingNode, ScalarNode, SequenceNode

    class Loader(yaml.SafeLoader):
        """SafeLoader that refuses bombs while composing and records each path's line."""

        def __init__(self, text: str, file: str | None, *, max_nodes: int, max_depth: int,
                     max_int_digits: int) -> None:
            super().__init__(text)
            self.file, self.max_nodes, self.max_depth = file, max_nodes, max_depth
            self.max_int_digits = max_int_digits
            self.lines: dict[str, int] = {}
            self._paths: list[str] = []
            self._open_anchors: list[str] = []
            self._stats: dict[int, tuple[int, int]] = {}  # id(node) -> (expanded nodes, expanded height)

        def refuse(self, message: str, mark: Any, path: str) -> ConfigError:
            line = mark.line + 1 if mark else None
            return ConfigError(message, file=self.file, line=line, field=_shorten(path) or None)

        def compose_node(self, parent: Any, index: Any) -> Any:
            event = self.peek_event()
            path = self._child_path(parent, index)
            is_key = isinstance(parent, MappingNode) and index is None
            if not is_key:
                key_mark = index.start_mark if isinstance(index, ScalarNode) else event.start_mark
                self.lines.setdefault(path, key_mark.line + 1)
            if isinstance(event, yaml.AliasEvent) and event.anchor in self._open_anchors:
                raise self.refuse(f"recursive alias *{event.anchor}: it refers to a node that contains it",
                                  event.start_mark, path)
            if len(self._paths) >= self.max_depth:
                raise self.refuse(f"nested deeper than {self.max_depth} levels", event.start_mark, path)
            anchor = None if isinstance(event, yaml.AliasEvent) else event.anchor
            self._paths.append(path)
            if anchor is not None:
                self._open_anchors.append(anchor)
            try:
                node = super().compose_node(parent, index)
            finally:
                self._paths.pop()
                if anchor is not None:
                    self._open_anchors.pop()
            if id(node) not in self._stats:  # an alias reuses a finished node and its stats
                self._finish(node, path)
            return node

        def _child_path(self, parent: Any, index: Any) -> str:
            base = self._paths[-1] if self._paths else ""
            if isinstance(parent, SequenceNode):
                return f"{base}[{index}]"
            if isinstance(parent, MappingNode):
                if index is None:
                    return base  # a key: its own path is its parent's
                key = index.value if isinstance(index, ScalarNode) else "<key>"
                return f"{base}.{key}" if base else str(key)
            return base

        def _finish(self, node: Any, path: str) -> None:
            """Count the node with its aliases expanded; refuse what would expand past the limits."""
            if isinstance(node, ScalarNode):
                if node.tag == "tag:yaml.org,2002:int" and len(node.value) > self.max_int_digits:
                    raise self.refuse(f"an integer of {len(node.value)} characters; at most "
                                      f"{self.max_int_digits} are accepted", node.start_mark, path)
                self._stats[id(node)] = (1, 1)
                return
            mapping = isinstance(node, MappingNode)
            children = [c for pair in node.value for c in pair] if mapping else node.value
            size, height = 1, 1
            for child in children:
                child_size, child_height = self._stats[id(child)]
                size, height = size + child_size, max(height, child_height + 1)
            if size > self.max_nodes:
                raise self.refuse(f"aliases expand this to more than {self.max_nodes:,} nodes (an alias "
                                  "bomb?); refusing to load it", node.start_mark, path)
            if height > self.max_depth:
                raise self.refuse(f"with its aliases expanded this is nested deeper than {self.max_depth} "
                                  "levels", node.start_mark, path)
            self._stats[id(node)] = (size, height)
            if isinstance(node, MappingNode):
                self._refuse_duplicate_keys(node, path)

        def _refuse_duplicate_keys(self, node: Any, path: str) -> None:
            seen: set[tuple[str, str]] = set()
            for key, _ in node.value:
                if not isinstance(key, ScalarNode) or key.value == "<<":  # merge keys may repeat keys
                    continue
                if (key.tag, key.value) in seen:
                    child = f"{path}.{key.value}" if path else str(key.value)
                    raise self.refuse("this key is written twice in one mapping", key.start_mark, child)
                seen.add((key.tag, key.value))

    return Loader


_LOADER: list[type] = []


def _Loader(text: str, file: str | None, **limits: int) -> Any:  # noqa: N802 - reads like the class it makes
    if not _LOADER:
        _LOADER.append(_loader_class())
    return _LOADER[0](text, file, **limits)


def _shorten(path: str, limit: int = 100) -> str:
    """A YAML path short enough for a message (a bomb's path can be thousands of ``[0]`` long)."""
    return path if len(path) <= limit else path[: limit - 3] + "..."
