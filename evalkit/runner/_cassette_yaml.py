"""Reading a cassette to replay: vcrpy's YAML loader behind a check that no bomb gets through."""

from __future__ import annotations

from typing import Any

from ..errors import ConfigError

__all__ = ["CheckedCassetteYAML"]


class CheckedCassetteYAML:
    """vcrpy's YAML serializer, refusing what no recorded cassette holds before anything is built.

    vcrpy's loader is safe against code execution, not against a small file that
    costs a lot to load: a few lines of anchors and aliases expand to billions of
    nodes, and deep nesting overflows the stack. Cassettes written by evalkit or
    vcrpy never use anchors and nest a few levels, so one pass over libYAML's
    parse events (no data built) refuses both; then vcrpy's own loader reads it.
    """

    max_depth = 32

    def __init__(self, path: str) -> None:
        self.path = path

    def deserialize(self, text: str) -> Any:
        """The cassette's data, or a ConfigError naming the file and line of the problem."""
        import yaml
        from vcr.serializers import yamlserializer

        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        depth = 0
        try:
            for event in yaml.parse(text, Loader=loader):
                if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                    raise self._refused(event, "uses YAML anchors or aliases, which no recorded cassette has")
                if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                    depth += 1
                    if depth > self.max_depth:
                        raise self._refused(event, f"nests deeper than {self.max_depth} levels")
                elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                    depth -= 1
            return yamlserializer.deserialize(text)
        except (yaml.YAMLError, ValueError) as exc:  # ValueError: an integer too long to convert
            mark = getattr(exc, "problem_mark", None)
            raise ConfigError(f"not a readable cassette: {getattr(exc, 'problem', None) or exc}", file=self.path,
                              line=mark.line + 1 if mark else None, field="--replay") from None

    def serialize(self, data: Any) -> str:
        """Never used by a replay (``record_mode="none"``); vcrpy's own writer, for completeness."""
        from vcr.serializers import yamlserializer

        text: str = yamlserializer.serialize(data)
        return text

    def _refused(self, event: Any, why: str) -> Exception:
        return ConfigError(f"refused: the cassette {why}", file=self.path, line=event.start_mark.line + 1,
                           field="--replay")
