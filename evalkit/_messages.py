"""Messages as users write them: :class:`~evalkit.types.Message` objects or OpenAI-style dicts.

``ChatRequest(messages=[{"role": "user", "content": "hi"}])`` is what every
OpenAI user types first, so :class:`~evalkit.types.ChatRequest` accepts it. Each
message is checked here, once, when the request is made: a bad one raises
``TypeError`` (wrong type) or ``ValueError`` (wrong value) naming the message
and field, ``messages[2].role: expected one of system, user, assistant, tool;
got 'bot'``, instead of an ``AttributeError`` deep inside a provider.

What is accepted is what :class:`~evalkit.types.Message` can carry and every
wire sends: text content (a string), ``tool_calls`` on assistant turns (OpenAI's
``{"id", "type": "function", "function": {"name", "arguments"}}`` entries or
:class:`~evalkit.types.ToolCall` objects), ``tool_call_id`` on tool turns and
``name``. Content-part lists (images, audio) are refused with a message saying
so: no wire sends them, and dropping them silently would change the prompt.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .types import ROLES, Message, ToolCall

__all__ = ["to_message", "to_messages"]

_MESSAGE_KEYS = ("role", "content", "tool_calls", "tool_call_id", "name")
_TOOL_CALL_KEYS = ("id", "type", "function")
_FUNCTION_KEYS = ("name", "arguments")
_EXPECTED_ROLES = ", ".join(ROLES)


class CheckedMessages(tuple):  # type: ignore[type-arg]
    """A tuple of Messages :func:`to_messages` has checked; Messages are frozen, so it stays checked.

    ``ChatRequest.replace`` (every router hop, every retry) and a request built
    from another's messages pass it on without checking each message again.
    """

    __slots__ = ()


def to_messages(messages: Any) -> tuple[Message, ...]:
    """``messages`` (a list or tuple of Messages and/or dicts) as a checked tuple of Messages."""
    if type(messages) is CheckedMessages:
        return messages
    if type(messages) not in (tuple, list) and (isinstance(messages, (str, bytes, Mapping, Message))
                                                or not isinstance(messages, Iterable)):
        raise TypeError(
            f"messages: expected a list of messages (Message objects or dicts with role and content); "
            f"got {_kind(messages)}" + (" (for one prompt use ChatRequest.from_prompt(text))"
                                        if isinstance(messages, str) else ""))
    out = tuple(messages)
    for i, m in enumerate(out):
        # Fast path: a plain text Message is accepted as it is (every request and every replace() lands here).
        if not (type(m) is Message and m.role in ROLES and type(m.content) is str and not m.tool_calls
                and m.tool_call_id is None and m.name is None):
            return CheckedMessages(to_message(m, f"messages[{i}]") for i, m in enumerate(out))
    return CheckedMessages(out)


def to_message(value: Any, where: str) -> Message:
    """One message (a Message or an OpenAI-style dict) as a checked Message; errors start with ``where``."""
    if isinstance(value, Message):
        return _checked(value, where)
    if isinstance(value, Mapping):
        return _checked(_from_mapping(value, where), where)
    raise TypeError(f"{where}: expected a Message or a dict with role and content; got {_kind(value)}")


def _from_mapping(data: Mapping[str, Any], where: str) -> Message:
    for key in data:
        if key not in _MESSAGE_KEYS:
            raise ValueError(f"{where}.{key}: unknown field; a message has {', '.join(_MESSAGE_KEYS)}")
    if "role" not in data:
        raise ValueError(f"{where}.role: required (one of {_EXPECTED_ROLES})")
    raw_calls = data.get("tool_calls")
    calls = () if raw_calls is None else _tool_calls(raw_calls, f"{where}.tool_calls")
    content = data.get("content")
    if content is None:
        if not calls:  # OpenAI too: content may be null only on a turn that calls tools
            raise ValueError(f"{where}.content: required (a string)")
        content = ""
    return Message(data["role"], content, calls, data.get("tool_call_id"), data.get("name"))


def _checked(m: Message, where: str) -> Message:
    """``m`` when every field is what the wires can send (tool calls normalised to a tuple); else raise."""
    if m.role not in ROLES:
        raise ValueError(f"{where}.role: expected one of {_EXPECTED_ROLES}; got {m.role!r}")
    if not isinstance(m.content, str):
        hint = (" (text only: join text parts into one string; images and other content parts are not "
                "supported)") if isinstance(m.content, (list, tuple)) else ""
        raise TypeError(f"{where}.content: expected a string; got {_kind(m.content)}{hint}")
    for field in ("tool_call_id", "name"):
        value = getattr(m, field)
        if value is not None and not isinstance(value, str):
            raise TypeError(f"{where}.{field}: expected a string; got {_kind(value)}")
    calls = m.tool_calls
    if type(calls) is not tuple or not all(type(c) is ToolCall for c in calls):
        calls = _tool_calls(calls, f"{where}.tool_calls")
    if calls and m.role != "assistant":
        raise ValueError(f"{where}.tool_calls: only an assistant message calls tools; this one is {m.role!r}")
    if m.tool_call_id is not None and m.role != "tool":
        raise ValueError(f"{where}.tool_call_id: only a tool message answers a tool call; "
                         f"this one is {m.role!r}")
    if calls is m.tool_calls:
        return m
    return Message(m.role, m.content, calls, m.tool_call_id, m.name)


def _tool_calls(raw: Any, where: str) -> tuple[ToolCall, ...]:
    if isinstance(raw, (str, bytes, Mapping)) or not isinstance(raw, Iterable):
        raise TypeError(f"{where}: expected a list of tool calls; got {_kind(raw)}")
    return tuple(_tool_call(c, f"{where}[{i}]") for i, c in enumerate(raw))


def _tool_call(raw: Any, where: str) -> ToolCall:
    if isinstance(raw, ToolCall):
        fields = {"id": (raw.id, f"{where}.id"), "name": (raw.name, f"{where}.name"),
                  "arguments": (raw.arguments, f"{where}.arguments")}
    elif isinstance(raw, Mapping):
        _known_keys(raw, _TOOL_CALL_KEYS, where)
        if raw.get("type", "function") != "function":
            raise ValueError(f"{where}.type: expected 'function'; got {raw['type']!r}")
        function = raw.get("function")
        if not isinstance(function, Mapping):
            raise TypeError(f"{where}.function: expected a dict with name and arguments; "
                            f"got {_kind(function)}")
        _known_keys(function, _FUNCTION_KEYS, f"{where}.function")
        fields = {"id": (raw.get("id"), f"{where}.id"),
                  "name": (function.get("name"), f"{where}.function.name"),
                  "arguments": (function.get("arguments"), f"{where}.function.arguments")}
    else:
        raise TypeError(f"{where}: expected a ToolCall or a dict with id, type and function; "
                        f"got {_kind(raw)}")
    for value, at in fields.values():
        if not isinstance(value, str):
            hint = " (the arguments as JSON text: json.dumps(...))" if isinstance(value, Mapping) else ""
            raise TypeError(f"{at}: expected a string; got {_kind(value)}{hint}")
    name, at = fields["name"]
    if not name:
        raise ValueError(f"{at}: must not be empty")
    if isinstance(raw, ToolCall):
        return raw
    return ToolCall(fields["id"][0], name, fields["arguments"][0])


def _known_keys(data: Mapping[str, Any], allowed: tuple[str, ...], where: str) -> None:
    for key in data:
        if key not in allowed:
            raise ValueError(f"{where}.{key}: unknown field; expected {', '.join(allowed)}")


def _kind(value: Any) -> str:
    return "None" if value is None else type(value).__name__
