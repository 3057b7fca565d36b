"""Prompt and response text, read off the hot path from what a request sent and answered.

Only for ``configure(capture_content=True)``. Everything is duck-typed (google-genai's
pydantic types, google-generativeai's protos, plain dicts and REST JSON), never imports a
Google package and never raises on a shape it does not know: a part without text becomes a
short placeholder (``[image/png]``, ``[function_call get_weather]``, ``[File]``), never
its bytes.

How texts read:

- a prompt that is one message (a str, a list of str and parts, one ``Content``) is its
  parts' text joined with newlines;
- a prompt of several messages (a chat turn sends the history with it) or with a system
  instruction has one ``role: text`` block per message, blocks separated by a blank
  line, the system instruction first as ``system: ...``;
- a response is the text of its first candidate's parts joined as ``response.text``
  joins them (thought parts left out), or an interaction's ``output_text``; a stream's
  is the concatenation of its chunks' (an interaction stream's: its text deltas).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ._jsonsafe import mask_secrets_in_text, truncation_marker, valid_text

__all__ = [
    "bound_text",
    "prompt_text",
    "response_text",
    "stream_text",
    "system_instruction_of",
]

_MASK_MARGIN = 256  # characters kept past the cut while masking: a key across it is matched
_MAX_ITEMS = 10_000  # parts / messages read at most (a bound against pathological inputs)
_UNREADABLE = "[unreadable]"
# Part fields that carry no text, and how their placeholder is named.
_PLACEHOLDERS = (
    ("inline_data", "inlineData"),
    ("file_data", "fileData"),
    ("function_call", "functionCall"),
    ("function_response", "functionResponse"),
    ("executable_code", "executableCode"),
    ("code_execution_result", "codeExecutionResult"),
)


def bound_text(text: str, max_chars: int, mask: bool) -> str:
    """``text`` cut to ``max_chars`` characters with a marker, its secrets masked (API
    keys, bearer tokens, URL passwords) when ``mask``, as valid Unicode.

    The text is masked before the cut (within a margin), so a key the cut would halve is
    still recognised and masked whole.
    """
    if len(text) <= max_chars:
        return mask_secrets_in_text(text) if mask else valid_text(text)
    window = text[: max_chars + _MASK_MARGIN]
    rest = len(text) - len(window)
    if mask:
        window = mask_secrets_in_text(window)
    if len(window) <= max_chars:  # masking shortened it
        return valid_text(window + truncation_marker(rest)) if rest else valid_text(window)
    cut = len(window) - max_chars + rest
    return valid_text(window[:max_chars] + truncation_marker(cut))


def _get(obj: Any, name: str, alias: str | None = None) -> Any:
    """``obj.name`` or ``obj[name]`` (or ``obj[alias]``: REST JSON is camelCase); None
    when absent or when reading it raises (a hostile object)."""
    try:
        if isinstance(obj, Mapping):
            value = obj.get(name)
            if value is None and alias is not None:
                value = obj.get(alias)
            return value
        return getattr(obj, name, None)
    except Exception:
        return None


def _type_name(obj: Any) -> str:
    try:
        return type(obj).__name__
    except Exception:
        return "object"


def _part_text(part: Any, response: bool) -> str | None:
    """A part's text, or its placeholder; None for a part to leave out (a thought in a
    response, an empty part). A part that cannot be read is ``[unreadable]``."""
    try:
        return _read_part(part, response)
    except Exception:  # a hostile object of the application's: its text is lost, not the rest
        return _UNREADABLE


def _read_part(part: Any, response: bool) -> str | None:
    if isinstance(part, str):
        return str.__str__(part)  # a plain str, whatever the subclass overrides
    if isinstance(part, (bytes, bytearray, memoryview)):
        return f"[{len(part)} bytes]"
    if response and _get(part, "thought") is True:
        return None
    text = _get(part, "text")
    if isinstance(text, str):
        text = str.__str__(text)
        if text or not _is_proto(part):
            return text
    for field, alias in _PLACEHOLDERS:
        value = _get(part, field, alias)
        if value is None or (_is_proto(part) and not value):
            continue
        if field in ("inline_data", "file_data"):
            mime = _get(value, "mime_type", "mimeType")
            return f"[{mime}]" if isinstance(mime, str) and mime else f"[{field}]"
        name = _get(value, "name")
        return f"[{field} {name}]" if isinstance(name, str) and name else f"[{field}]"
    if isinstance(part, Mapping):
        if "mime_type" in part or "mimeType" in part:  # an old-client blob dict
            mime = _get(part, "mime_type", "mimeType")
            return f"[{mime}]" if isinstance(mime, str) and mime else "[data]"
        return None if not part or _get(part, "type") == "thought" else f"[{_type_name(part)}]"
    uri, mime = _get(part, "uri"), _get(part, "mime_type")
    if isinstance(uri, str) and isinstance(mime, str):  # an uploaded File
        return f"[{mime}]"
    return None if text == "" else f"[{_type_name(part)}]"


def _is_proto(obj: Any) -> bool:
    """True for protobuf messages (google-generativeai), whose unset fields read as empty
    values rather than None."""
    module = getattr(type(obj), "__module__", "") or ""
    return module.startswith(("google.ai.", "google.protobuf", "proto.")) or hasattr(
        type(obj), "pb"
    )


def _message(item: Any) -> tuple[str | None, Any] | None:
    """(role, parts) of a Content-like item, else None (it is a part)."""
    if isinstance(item, str):
        return None
    parts = _get(item, "parts")
    if parts is None and isinstance(item, Mapping) and "role" in item:
        parts = item.get("content")  # an Interactions API turn
    if parts is None:
        return None
    role = _get(item, "role")
    return (str.__str__(role) or None if isinstance(role, str) else None), parts


def _as_list(value: Any) -> list[Any]:
    """The items of a list (or tuple, or a proto's repeated field); anything else is one
    item (a pydantic model iterates over its fields, a str over its characters)."""
    if value is None:
        return []
    if isinstance(value, (str, bytes, bytearray)) or not isinstance(value, Sequence):
        return [value]
    out: list[Any] = []
    try:
        for item in value:
            if len(out) >= _MAX_ITEMS:
                break
            out.append(item)
    except Exception:  # a hostile iterable: what it gave so far, and a placeholder
        out.append(_UNREADABLE)
    return out


def _texts(parts: Any, response: bool) -> list[str]:
    out = []
    for part in _as_list(parts):
        text = _part_text(part, response)
        if text is not None:
            out.append(text)
    return out


def _messages(contents: Any) -> list[tuple[str, str]]:
    """(role, text) per message; loose parts gather into user messages, as the client
    gathers them."""
    messages: list[tuple[str, str]] = []
    loose: list[str] = []
    for item in _as_list(contents):
        found = _message(item)
        if found is None:
            text = _part_text(item, False)
            if text is not None:
                loose.append(text)
            continue
        if loose:
            messages.append(("user", "\n".join(loose)))
            loose = []
        role, parts = found
        messages.append((role or "user", "\n".join(_texts(parts, False))))
    if loose:
        messages.append(("user", "\n".join(loose)))
    return messages


def prompt_text(contents: Any, system_instruction: Any = None) -> str | None:
    """The text of a request's ``contents`` (and system instruction); None when there
    is none."""
    messages = _messages(contents)
    system = None
    if system_instruction is not None:
        found = _message(system_instruction)
        parts = found[1] if found is not None else system_instruction
        system = "\n".join(_texts(parts, False)) or None
    if not messages and system is None:
        return None
    if system is None and len(messages) == 1:
        return messages[0][1]
    blocks = [f"system: {system}"] if system is not None else []
    blocks.extend(f"{role}: {text}" for role, text in messages)
    return "\n\n".join(blocks)


def response_text(response: Any) -> str | None:
    """The text a response (or one stream chunk) answered; None when it has none (a
    blocked prompt, an embedding)."""
    if response is None or isinstance(response, (str, bytes)):
        return None
    candidates = _get(response, "candidates")
    if candidates is not None:
        listed = _as_list(candidates)
        if not listed:
            return None
        content = _get(listed[0], "content")
        if content is None:
            return None
        texts = _texts(_get(content, "parts"), True)
        return "".join(texts) if texts else None
    # The Interactions API: an Interaction, or a stream event (only text deltas carry
    # text; the completion event's interaction repeats it and is left out).
    output = _get(response, "output_text")
    if isinstance(output, str):
        return output or None
    delta = _get(response, "delta")
    if delta is not None and _get(delta, "type") in (None, "text"):
        text = _get(delta, "text")
        return text if isinstance(text, str) and text else None
    return None


def stream_text(chunks: Iterable[Any]) -> str | None:
    """The text of a stream: its chunks' texts joined."""
    texts = [t for t in (response_text(c) for c in chunks) if t is not None]
    return "".join(texts) if texts else None


def system_instruction_of(config: Any, kwargs: Mapping[str, Any] | None = None) -> Any:
    """The system instruction a request sent: in its ``config`` (google-genai) or as a
    keyword argument (the Interactions API)."""
    found = _get(config, "system_instruction", "systemInstruction") if config else None
    if found is None and kwargs is not None:
        found = kwargs.get("system_instruction")
    return found
