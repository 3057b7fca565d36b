"""Hostile test objects shared by ``tests/test_properties.py`` and
``tests/reliability/test_hostile_input.py``: objects whose dunders raise, evil builtin
subclasses, cycles, deep nesting and exceptions that cannot be printed; and the other side,
:func:`plainly_valid`, the required arguments that must be logged.

Import with ``from tests.hostile_objects import ...`` (the suite runs in pytest's
``importlib`` import mode, where test modules cannot import their siblings by bare name).
(``tests/test_properties.py`` has a strategy named ``hostile_objects``: do not bind the
module to that name there.)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class Boom(Exception):
    """What every hostile dunder raises."""


def _boom(*args: Any, **kwargs: Any) -> Any:
    raise Boom("hostile")


class Hostile:
    """Every dunder a logger might touch raises; so does any attribute access.

    The union of the two suites' versions: the reliability suite's ``__lt__``, ``__fspath__``
    and ``__call__`` are kept. ``__call__`` makes ``callable(Hostile())`` true, so it passes
    for a hook (the reliability suite's ``redact=Hostile()`` is accepted, then raises when
    called) and ``logged_prompt(...)(Hostile())`` would wrap it rather than refuse it. The
    property tests never hand it to anything that checks ``callable()`` (their
    decoration-time arguments are ``tame_wrong``; records, metadata, responses and
    ``log_prompt_execution`` arguments are not checked for it), so it means the same there.
    """

    __repr__ = _boom
    __str__ = _boom
    __format__ = _boom
    __eq__ = _boom
    __hash__ = _boom  # type: ignore[assignment]
    __bool__ = _boom
    __len__ = _boom
    __iter__ = _boom
    __int__ = _boom
    __index__ = _boom
    __float__ = _boom
    __lt__ = _boom
    __fspath__ = _boom
    __call__ = _boom

    def __getattr__(self, name: str) -> Any:
        raise Boom(name)


class HostileKey(Hostile):
    """Hashable by identity (usable as a dict key: lookups compare by identity first),
    hostile otherwise, ``__eq__`` included.

    (The reliability suite's copy had ``__eq__ = object.__eq__``; its seeded cases pass, and
    take the same paths through the library, with the raising one. The property tests'
    copy raised, and there it is the only dict key whose ``__eq__`` raises: kept.)
    """

    __hash__ = object.__hash__  # type: ignore[assignment]


class EvilStr(str):
    """A str whose methods raise (hash and equality still work: it can be a dict key)."""

    __repr__ = _boom
    __str__ = _boom
    __len__ = _boom
    __getitem__ = _boom
    __iter__ = _boom
    __format__ = _boom
    strip = _boom
    lower = _boom
    encode = _boom
    replace = _boom
    startswith = _boom
    endswith = _boom


class EvilInt(int):
    """An int whose conversions and comparisons raise."""

    __repr__ = _boom
    __str__ = _boom
    __index__ = _boom
    __int__ = _boom
    __float__ = _boom
    __lt__ = _boom
    __le__ = _boom
    __gt__ = _boom
    __ge__ = _boom
    __eq__ = _boom
    __hash__ = int.__hash__
    __bool__ = _boom
    __add__ = _boom
    __radd__ = _boom
    __format__ = _boom


class EvilFloat(float):
    """A float whose conversions and comparisons raise."""

    __repr__ = _boom
    __str__ = _boom
    __eq__ = _boom
    __hash__ = float.__hash__
    __lt__ = _boom
    __gt__ = _boom
    __format__ = _boom


class EvilDict(dict):  # type: ignore[type-arg]
    """A dict whose views and lookups raise."""

    items = _boom
    keys = _boom
    values = _boom
    get = _boom
    __iter__ = _boom
    __len__ = _boom
    __repr__ = _boom
    __contains__ = _boom
    __getitem__ = _boom


class EvilMapping(Mapping):  # type: ignore[type-arg]
    """A Mapping whose every access raises."""

    __getitem__ = _boom
    __iter__ = _boom
    __len__ = _boom


class EvilList(list):  # type: ignore[type-arg]
    """A list whose iteration, length, indexing and repr raise."""

    __iter__ = _boom
    __len__ = _boom
    __repr__ = _boom
    __getitem__ = _boom


class Bag:
    """An object whose attributes are whatever the test chose: ``Bag({"a": 1})`` or
    ``Bag(a=1)``."""

    def __init__(self, attrs: Mapping[str, Any] | None = None, /, **more: Any) -> None:
        for k, v in {**(attrs or {}), **more}.items():
            object.__setattr__(self, k, v)


class RaisingResponse:
    """Looks like a Gemini response, but its fields raise on access."""

    @property
    def usage_metadata(self) -> Any:
        raise Boom("usage_metadata")

    @property
    def candidates(self) -> Any:
        raise Boom("candidates")

    @property
    def prompt_feedback(self) -> Any:
        raise Boom("prompt_feedback")


# -- hostile exceptions ----------------------------------------------------------------------
class UnprintableError(Exception):
    __str__ = _boom
    __repr__ = _boom


class WeirdCodeError(Exception):
    """An error whose status code (and message) may be anything."""

    def __init__(self, code: Any, message: Any) -> None:
        super().__init__(message)
        self.code = code
        self.status_code = code
        self.response = Bag(status_code=code)


class RaisingAttrError(Exception):
    """An error that raises on any attribute access but what raising it needs."""

    __str__ = _boom

    def __getattribute__(self, name: str) -> Any:
        if name in (
            "__traceback__",
            "__cause__",
            "__context__",
            "__suppress_context__",
            "__class__",
            "with_traceback",
            "__setattr__",
            "__dict__",
            "args",
            "add_note",
            "__notes__",
        ):
            return object.__getattribute__(self, name)
        raise Boom(name)


class EvilBaseException(BaseException):
    __str__ = _boom


# -- structures ------------------------------------------------------------------------------
def cyclic_dict() -> dict[str, Any]:
    d: dict[str, Any] = {"a": 1}
    d["self"] = d
    d["list"] = [d, {"back": d}]
    return d


def cyclic_list() -> list[Any]:
    lst: list[Any] = [1]
    lst.append(lst)
    lst.append({"l": lst})
    return lst


def deep(n: int = 5000) -> list[Any]:
    """A list nested ``n`` deep."""
    root: list[Any] = []
    node = root
    for _ in range(n):
        child: list[Any] = []
        node.append(child)
        node = child
    return root


def plainly_valid(template_key: Any, success: Any, response_time_ms: Any) -> bool:
    """Required arguments of ``log_prompt_execution`` that must give an id (and a record):
    a plain non-blank ``str`` key, a ``bool``, and a plain number of milliseconds from 0 to
    a day. (Others may give an id or ``None``; hostile ones give ``None``.)"""
    return (
        type(template_key) is str
        and template_key.strip() != ""
        and type(success) is bool
        and type(response_time_ms) in (int, float)
        and 0 <= response_time_ms <= 86_400_000
    )
