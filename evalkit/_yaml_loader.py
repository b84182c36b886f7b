"""The composing half of :mod:`evalkit._yaml`: a SafeLoader that refuses bombs before any data is built.

Imported only when a YAML file is loaded (it imports PyYAML), so ``import
evalkit`` stays cheap. While PyYAML composes the node graph, every node is
checked on the way down (recursive aliases, nesting) and measured on the way
up: its size and height *with aliases expanded*, computed from its children's
(an alias is the node it names, already measured), so a billion-laughs
document is refused after a few hundred nodes instead of being expanded.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from ._yaml import MAX_DEPTH, MAX_INT_DIGITS, MAX_NODES
from .errors import ConfigError

__all__ = ["BoundedLoader"]

_INT_TAG = "tag:yaml.org,2002:int"


class BoundedLoader(yaml.SafeLoader):
    """SafeLoader that refuses bombs while composing and records each YAML path's line in :attr:`lines`."""

    def __init__(self, text: str, file: str | None) -> None:
        super().__init__(text)
        self.file = file
        self.lines: dict[str, int] = {}
        self._paths: list[str] = []  # the YAML paths of the nodes being composed, outermost first
        self._open_anchors: list[str] = []  # anchors whose node is still being composed
        self._expanded: dict[int, tuple[int, int]] = {}  # id(node) -> (nodes, height) with aliases expanded

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        event = self.peek_event()
        path = self._child_path(parent, index)
        if not (isinstance(parent, MappingNode) and index is None):  # a key has no line of its own
            key_mark = index.start_mark if isinstance(index, ScalarNode) else event.start_mark
            self.lines.setdefault(path, key_mark.line + 1)
        if isinstance(event, yaml.AliasEvent) and event.anchor in self._open_anchors:
            raise self._refuse(f"recursive alias *{event.anchor}: it refers to a node that contains it",
                               event.start_mark, path)
        if len(self._paths) >= MAX_DEPTH:  # before PyYAML recurses: thousands of [ overflow its stack
            raise self._refuse(f"nested deeper than {MAX_DEPTH} levels", event.start_mark, path)
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
        if id(node) not in self._expanded:  # an alias returns a node already measured
            self._measure(node, path)
        return node

    def _child_path(self, parent: Node | None, index: Any) -> str:
        base = self._paths[-1] if self._paths else ""
        if isinstance(parent, SequenceNode):
            return f"{base}[{index}]"
        if isinstance(parent, MappingNode):
            if index is None:
                return base  # a key: its own path is its parent's
            key = index.value if isinstance(index, ScalarNode) else "<key>"
            return f"{base}.{key}" if base else str(key)
        return base

    def _measure(self, node: Node, path: str) -> None:
        """Record the node's size and height with aliases expanded; refuse what is past the limits."""
        if isinstance(node, ScalarNode):
            if node.tag == _INT_TAG and len(node.value) > MAX_INT_DIGITS:
                raise self._refuse(f"an integer of {len(node.value)} characters; at most {MAX_INT_DIGITS} "
                                   "are accepted", node.start_mark, path)
            self._expanded[id(node)] = (1, 1)
            return
        is_mapping = isinstance(node, MappingNode)
        children = [c for pair in node.value for c in pair] if is_mapping else node.value
        size, height = 1, 1
        for child in children:
            child_size, child_height = self._expanded[id(child)]
            size, height = size + child_size, max(height, child_height + 1)
        if size > MAX_NODES:
            raise self._refuse(f"aliases expand this to more than {MAX_NODES:,} nodes (an alias bomb?); "
                               "refusing to load it", node.start_mark, path)
        if height > MAX_DEPTH:
            raise self._refuse(f"with its aliases expanded this is nested deeper than {MAX_DEPTH} levels",
                               node.start_mark, path)
        self._expanded[id(node)] = (size, height)
        if is_mapping:
            self._refuse_duplicate_keys(node, path)

    def _refuse_duplicate_keys(self, node: MappingNode, path: str) -> None:
        seen: set[tuple[str, str]] = set()
        for key, _ in node.value:
            if not isinstance(key, ScalarNode) or key.value == "<<":  # merge keys may repeat keys
                continue
            if (key.tag, key.value) in seen:
                child = f"{path}.{key.value}" if path else str(key.value)
                raise self._refuse("this key is written twice in one mapping", key.start_mark, child)
            seen.add((key.tag, key.value))

    def _refuse(self, message: str, mark: Any, path: str) -> ConfigError:
        return ConfigError(message, file=self.file, line=mark.line + 1 if mark else None,
                           field=_shorten(path) or None)


def _shorten(path: str, limit: int = 100) -> str:
    """A YAML path short enough for a message (a bomb's path can be thousands of ``[0]`` long)."""
    return path if len(path) <= limit else path[: limit - 3] + "..."
