"""``Prompt`` (one version of a prompt, as served) and the prompt errors."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..exceptions import VividlyTraceError

__all__ = [
    "Prompt",
    "PromptError",
    "PromptNotFoundError",
    "PromptRenderError",
    "PromptUnavailableError",
    "template_variables",
]

_VARIABLE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


class PromptError(VividlyTraceError):
    """Base class of the errors of :mod:`vividly_trace.prompts`."""


class PromptNotFoundError(PromptError, LookupError):
    """The store holds no such prompt (key, version or label), and no fallback was given."""


class PromptUnavailableError(PromptError):
    """The store cannot be reached, nothing is cached for the key and no fallback was given."""


class PromptRenderError(PromptError, ValueError):
    """``Prompt.render`` was given too few variables, or ones the template does not use."""


def template_variables(text: str) -> frozenset[str]:
    """The names of the ``{{ name }}`` placeholders in ``text``."""
    return frozenset(_VARIABLE.findall(text))


@dataclass(frozen=True, slots=True)
class Prompt:
    """One prompt version as :func:`vividly_trace.prompts.get` served it.

    ``version`` and ``ab_group`` are what a logged call that fetched it records:
    ``ab_group`` is ``"control"`` or ``"treatment"`` when the version was chosen by the
    key's rollout, else ``None``. A fallback (``is_fallback``) has no version and tags no
    call. ``text`` holds ``{{ name }}`` placeholders, filled in by :meth:`render`.

    .. versionadded:: 0.4.0
    """

    key: str
    version: str | None
    ab_group: str | None
    text: str
    model: str | None = None
    config: Mapping[str, Any] = field(default_factory=dict)
    is_fallback: bool = False

    @property
    def variables(self) -> frozenset[str]:
        """The placeholder names of :attr:`text`."""
        return template_variables(self.text)

    def render(self, **variables: Any) -> str:
        """The text with every ``{{ name }}`` replaced by ``str(variables[name])``.

        Raises:
            PromptRenderError: a placeholder has no value, or a value has no placeholder
                (both are named).
        """
        names = self.variables
        missing = sorted(names - variables.keys())
        unused = sorted(variables.keys() - names)
        if missing or unused:
            problems = []
            if missing:
                problems.append(f"missing variables {', '.join(missing)}")
            if unused:
                problems.append(f"variables not in the template {', '.join(unused)}")
            raise PromptRenderError(f"cannot render {self._name()}: {'; '.join(problems)}")
        return _VARIABLE.sub(lambda m: str(variables[m.group(1)]), self.text)

    def _name(self) -> str:
        if self.is_fallback:
            return f"prompt {self.key!r} (the fallback)"
        return f"prompt {self.key!r} version {self.version!r}"
