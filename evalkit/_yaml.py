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
(before any data is built: :mod:`evalkit._yaml_loader`), and returns the data
together with a path → line index (``router.routes.code.targets[1]`` → 17)
built without expanding aliases: a path below an alias has no entry of its own and
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

__all__ = ["MAX_BYTES", "MAX_DEPTH", "MAX_INT_DIGITS", "MAX_NODES", "YamlDocument", "config_text", "line_of",
           "load_yaml", "load_yaml_file", "read_bounded"]

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


def load_yaml_file(path: str | Path, *, what: str = "file", max_bytes: int = MAX_BYTES) -> YamlDocument:
    """:func:`load_yaml` of a file; ``what`` names it in errors (``cannot read routing config: ...``)."""
    return load_yaml(read_bounded(path, what=what, max_bytes=max_bytes), file=str(path))


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


def load_yaml(source: str | bytes, *, file: str | None = None) -> YamlDocument:
    """One YAML document (bytes must be UTF-8) as data plus its line index, or a located ConfigError."""
    import yaml

    from ._yaml_loader import BoundedLoader  # imports PyYAML: only when a file is actually loaded

    text = config_text(source, file) if isinstance(source, bytes) else source
    loader = BoundedLoader(text, file)
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


def config_text(data: bytes, file: str | None) -> str:
    """A config file's bytes as text (a UTF-8 BOM dropped), or a ConfigError naming the bad byte and line."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError(f"not valid UTF-8: byte {exc.start} (0x{data[exc.start]:02x}) {exc.reason}; "
                          "save the file as UTF-8", file=file, line=line) from None
