"""The public surface of vividly_trace.analytics: names, laziness, docstrings."""

from __future__ import annotations

import inspect
import subprocess
import sys

import vividly_trace.analytics as analytics


def test_all_resolves() -> None:
    """Every name in __all__ can be imported (ruff's RUF022 keeps it sorted)."""
    for name in analytics.__all__:
        assert getattr(analytics, name) is not None
    assert set(analytics.__all__) <= set(dir(analytics))


def test_public_names_have_docstrings() -> None:
    """Every public function and class says what it does."""
    for name in analytics.__all__:
        value = getattr(analytics, name)
        if inspect.isclass(value) or inspect.isfunction(value):
            assert inspect.getdoc(value), name


def test_choose_variant_does_not_load_sqlalchemy() -> None:
    """Request handlers can import choose_variant without SQLAlchemy or pandas."""
    code = (
        "import sys\n"
        "from vividly_trace.analytics import choose_variant\n"
        "choose_variant('t', 'u', {'A': 1})\n"
        "import vividly_trace.examples.nlu_extraction\n"
        "heavy = [m for m in ('sqlalchemy', 'pandas', 'plotly', 'rich') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == ""


def test_unknown_attribute() -> None:
    """A name that is not there raises AttributeError."""
    try:
        analytics.nope  # type: ignore[attr-defined]  # noqa: B018
    except AttributeError as exc:
        assert "nope" in str(exc)
    else:  # pragma: no cover
        raise AssertionError("no AttributeError")
