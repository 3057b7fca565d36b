"""vividly_trace: know what every Gemini prompt costs, how fast it is, how often it fails.

::

    from vividly_trace import configure, logged_prompt

    configure()  # the embedded default: a SQLite file

    @logged_prompt("nlu_extraction", version="v3", ab_group="B")
    def extract_intent(text):
        return client.models.generate_content(model="gemini-2.5-flash", contents=text)

Importing this package loads only the standard library and ``wrapt``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._api import calculate_gemini_cost, log_prompt_execution
from ._assign import choose_variant
from ._call import CallHandle
from ._config import configure, flush, reset, shutdown, stats
from ._context import carry_context, get_current_call
from ._decorator import logged_prompt
from ._jsonsafe import json_safe
from ._lazy import lazy_names
from ._record import PromptExecution, RequestRecord
from ._version import __version__
from .exceptions import ConfigurationError, MissingExtraError, RecordsRejected, VividlyTraceError
from .usage import ResponseInfo, Usage, register_extractor

if TYPE_CHECKING:
    from ._scope import Scope, context
    from ._score import Score, score
    from .pricing import ModelPrice, PricingTable

# Imported on first use (PEP 562): most set-ups never bind a context or send a score, and
# the price table loads with the first pipeline (configure(), or the first logged call).
_LAZY = {
    "Scope": "._scope",
    "context": "._scope",
    "Score": "._score",
    "score": "._score",
    "ModelPrice": ".pricing",
    "PricingTable": ".pricing",
}


__getattr__, __dir__ = lazy_names(__name__, _LAZY, globals(), submodules=("pricing",))


__all__ = [
    "CallHandle",
    "ConfigurationError",
    "MissingExtraError",
    "ModelPrice",
    "PricingTable",
    "PromptExecution",
    "RecordsRejected",
    "RequestRecord",
    "ResponseInfo",
    "Scope",
    "Score",
    "Usage",
    "VividlyTraceError",
    "__version__",
    "calculate_gemini_cost",
    "carry_context",
    "choose_variant",
    "configure",
    "context",
    "flush",
    "get_current_call",
    "json_safe",
    "log_prompt_execution",
    "logged_prompt",
    "register_extractor",
    "reset",
    "score",
    "shutdown",
    "stats",
]
