"""The configuration: configure() and its validation, the environment, and the public
set-up functions flush(), shutdown(), reset() and stats().

It builds a :class:`~vividly_trace._pipeline.Pipeline` and installs it in
:mod:`vividly_trace._active`, where the hot path reads it.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._active import UNSET, state
from ._build import Redactor
from ._dispatch import DispatchOptions
from ._jsonsafe import show
from ._lifecycle import install_exit_hook, install_sigterm_handler
from ._pipeline import Pipeline
from ._safety import internal_error, logger
from ._spool import default_spool_dir
from ._trace import trace_context_getter
from .exceptions import ConfigurationError

if TYPE_CHECKING:
    from .pricing import PricingTable

__all__ = [
    "configure",
    "configured_pipeline",
    "current_pricing",
    "flush",
    "get_pipeline",
    "reset",
    "shutdown",
    "stats",
    "swap_pipeline",
]


def _validate_sinks(sinks: Iterable[Any]) -> list[Any]:
    try:
        result = list(sinks)
    except Exception:
        raise ConfigurationError(
            f"configure(): sinks must be a sequence of sinks, got {show(sinks)}"
        ) from None
    names: set[str] = set()
    for sink in result:
        try:
            name = getattr(sink, "name", None)
            writes = callable(getattr(sink, "write_batch", None))
        except Exception:  # a hostile __getattr__
            name, writes = None, False
        if not isinstance(name, str) or not str.strip(name):
            raise ConfigurationError(f"sink {show(sink)} needs a non-empty 'name' attribute")
        name = str.__str__(name)
        if not writes:
            raise ConfigurationError(f"sink {show(name)} has no write_batch(records) method")
        if name in names:
            raise ConfigurationError(
                f"two sinks are named {show(name)}: give each a distinct name= (spool files and "
                "stats are kept per name)"
            )
        names.add(name)
    return result


def _number(
    name: str, value: Any, *, lo: float, hi: float = math.inf, integer: bool = False
) -> Any:
    ok = type(value) in ((int,) if integer else (int, float))
    if ok and not (lo <= value <= hi and value == value):  # value == value: not NaN
        ok = False
    if not ok:
        kind = "an int" if integer else "a number"
        raise ConfigurationError(
            f"configure(): {name} must be {kind} in [{lo}, {hi}], got {show(value)}"
        )
    return value


def configure(
    *,
    sinks: Sequence[Any] | None = None,
    sync: bool = False,
    sample_rate: float = 1.0,
    redact: Redactor | None = None,
    mask_secrets: bool = True,
    pricing: PricingTable | str | Path | Mapping[str, Any] | None = None,
    queue_size: int = 10_000,
    batch_size: int = 200,
    flush_interval: float = 1.0,
    max_retries: int = 3,
    retry_backoff: float = 0.2,
    spool_dir: str | Path | bool | None = None,
    spool_max_bytes: int = 256 * 1024 * 1024,
    shutdown_timeout: float = 5.0,
    enabled: bool = True,
    handle_sigterm: bool = True,
    capture_trace_context: bool | None = None,
    capture_clients: bool = True,
    capture_unlogged: bool = True,
    capture_content: bool | None = None,
    content_max_chars: int | None = None,
) -> None:
    """Set up logging for this process (call again to replace the set-up).

    Args:
        sinks: where records go. ``None`` means the embedded default: a SQLite file,
            ``vividly_trace.db`` in the working directory or ``$VIVIDLY_TRACE_DATABASE_URL``.
        sync: write inline in the caller's thread (scripts and tests); the default hands
            records to one background worker per sink.
        sample_rate: fraction of successful calls kept (failures are always kept).
        redact: ``(record) -> record | None`` run off the hot path before any sink sees a
            record; return a changed record (``dataclasses.replace``) or ``None`` to drop it.
        mask_secrets: mask metadata values under keys that look like secrets and API keys
            or bearer tokens inside strings (on by default).
        pricing: a mapping of model overrides, or a path to a TOML/JSON table, applied
            over the packaged table (extending it: see :meth:`PricingTable.load`; a file
            with ``replace = true`` replaces it); or a :class:`PricingTable`, used as it is
            (``PricingTable.from_file(path)`` replaces the packaged table).
        queue_size: per-sink bound; beyond it records are dropped and counted.
        batch_size, flush_interval: a worker wakes when a batch is full or every
            ``flush_interval`` seconds.
        max_retries, retry_backoff: retries of a failed batch (exponential backoff with
            jitter) before it is spooled.
        spool_dir: directory of the per-sink spools (default ``$VIVIDLY_TRACE_SPOOL_DIR`` or
            ``~/.cache/vividly_trace/spool``); ``False`` disables spooling.
        spool_max_bytes: cap of each sink's spool; beyond it records are dropped and counted.
        shutdown_timeout: seconds granted to flush at interpreter exit.
        enabled: ``False`` turns every decorator into a plain pass-through.
        capture_trace_context: record the OpenTelemetry span active when each call starts
            (its ``traceparent`` goes into the record's metadata), so Cloud Logging entries
            and OTel spans join the caller's trace. ``None`` (default): on when a Cloud
            Logging or OpenTelemetry sink is configured and ``opentelemetry-api`` is
            installed. It costs a context lookup per call.
        capture_clients: wrap the Google clients' request methods (google-genai), so that
            every Gemini request made inside a logged call adds its tokens and cost to that
            call's record, whatever the function returns or yields (several requests are
            summed, each priced at its own model). Removed by :func:`reset`.
        capture_unlogged: with ``capture_clients``, record a Gemini request made outside
            any logged call too, under the calling function's ``module:qualname``.
        capture_content: keep the prompt and response text on each record
            (``prompt_text``, ``response_text``); off by default. The prompt is what the
            first Gemini request of the call sent (client capture), the response what the
            last one answered (a stream's chunks joined), or the text of a raw response
            the function returned. Both are cut to ``content_max_chars`` (with a
            ``...[truncated N chars]`` marker), masked like metadata when
            ``mask_secrets`` is on, and seen by ``redact`` before any sink. ``None``:
            ``$VIVIDLY_TRACE_CAPTURE_CONTENT`` (``true``/``false``), else off.
        content_max_chars: the most characters kept of each text (default 8192, or
            ``$VIVIDLY_TRACE_CONTENT_MAX_CHARS``); an int from 1 to 10,000,000.
        handle_sigterm: on SIGTERM, flush (within ``shutdown_timeout``) before the process
            ends. Installed only from the main thread and only when SIGTERM still has its
            default disposition, so an application's own handler always wins; the default
            action (termination) follows the flush.

    Raises:
        ConfigurationError: a bad argument (checked here, never at call time).

    .. versionadded:: 0.1.0
    """
    if enabled is not True and enabled is not False:
        raise ConfigurationError(f"configure(): enabled must be a bool, got {show(enabled)}")
    if not isinstance(handle_sigterm, bool):
        raise ConfigurationError(
            f"configure(): handle_sigterm must be a bool, got {show(handle_sigterm)}"
        )
    if enabled and _env_disabled():
        logger.info("vividly_trace: VIVIDLY_TRACE_DISABLED is set; configure() records nothing")
        enabled = False
    options: dict[str, Any] = {
        "sync": sync,
        "sample_rate": sample_rate,
        "redact": redact,
        "mask_secrets": mask_secrets,
        "pricing": pricing,
        "queue_size": queue_size,
        "batch_size": batch_size,
        "flush_interval": flush_interval,
        "max_retries": max_retries,
        "retry_backoff": retry_backoff,
        "spool_dir": spool_dir,
        "spool_max_bytes": spool_max_bytes,
        "shutdown_timeout": shutdown_timeout,
        "capture_clients": capture_clients,
        "capture_unlogged": capture_unlogged,
        "capture_content": capture_content,
        "content_max_chars": content_max_chars,
    }
    if enabled:
        built = configured_pipeline(
            sinks=sinks, capture_trace_context=capture_trace_context, **options
        )
    else:  # still refuse bad arguments, whether or not they are used
        configured_pipeline(sinks=[], capture_trace_context=False, **options)
        built = None
    _install(built)
    if built is not None and handle_sigterm:
        install_sigterm_handler(_at_exit)


def configured_pipeline(
    *,
    sinks: Sequence[Any] | None = None,
    sync: bool = False,
    sample_rate: float = 1.0,
    redact: Redactor | None = None,
    mask_secrets: bool = True,
    pricing: PricingTable | str | Path | Mapping[str, Any] | None = None,
    queue_size: int = 10_000,
    batch_size: int = 200,
    flush_interval: float = 1.0,
    max_retries: int = 3,
    retry_backoff: float = 0.2,
    spool_dir: str | Path | bool | None = None,
    spool_max_bytes: int = 256 * 1024 * 1024,
    shutdown_timeout: float = 5.0,
    capture_trace_context: bool | None = None,
    capture_clients: bool = True,
    capture_unlogged: bool = True,
    capture_content: bool | None = None,
    content_max_chars: int | None = None,
) -> Pipeline:
    """A pipeline built from :func:`configure`'s arguments (validated), not installed."""
    capture_content, content_max_chars = _content_options(capture_content, content_max_chars)
    for flag, value in (
        ("sync", sync),
        ("mask_secrets", mask_secrets),
        ("capture_clients", capture_clients),
        ("capture_unlogged", capture_unlogged),
    ):
        if not isinstance(value, bool):
            raise ConfigurationError(f"configure(): {flag} must be a bool, got {show(value)}")
    _number("sample_rate", sample_rate, lo=0.0, hi=1.0)
    _number("queue_size", queue_size, lo=1, integer=True)
    _number("batch_size", batch_size, lo=1, integer=True)
    _number("flush_interval", flush_interval, lo=0.001, hi=3600)
    _number("max_retries", max_retries, lo=0, hi=100, integer=True)
    _number("retry_backoff", retry_backoff, lo=0.0, hi=600)
    _number("spool_max_bytes", spool_max_bytes, lo=0, integer=True)
    _number("shutdown_timeout", shutdown_timeout, lo=0.0, hi=3600)
    if redact is not None and not callable(redact):
        raise ConfigurationError("configure(): redact must be callable (record) -> record | None")
    table = _pricing(pricing)
    if spool_dir is False:
        spool: Path | None = None
    elif spool_dir is None or spool_dir is True:
        spool = default_spool_dir()
    else:
        spool = _spool_path(spool_dir)
    sink_list = _validate_sinks(_default_sinks() if sinks is None else sinks)
    options = DispatchOptions(
        queue_size=queue_size,
        batch_size=batch_size,
        flush_interval=flush_interval,
        max_retries=max_retries,
        retry_backoff=retry_backoff,
        spool_dir=spool,
        spool_max_bytes=spool_max_bytes,
    )
    return Pipeline(
        sink_list,
        sync=sync,
        options=options,
        pricing=table,
        sample_rate=float(sample_rate),
        redact=redact,
        mask_secrets=mask_secrets,
        shutdown_timeout=float(shutdown_timeout),
        trace_getter=trace_context_getter(capture_trace_context, sink_list),
        capture_clients=capture_clients,
        capture_unlogged=capture_unlogged,
        content_max_chars=content_max_chars if capture_content else None,
    )


#: The default of ``content_max_chars`` (as metadata strings are cut).
DEFAULT_CONTENT_MAX_CHARS = 8192
_MAX_CONTENT_CHARS = 10_000_000
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def _content_options(capture: Any, max_chars: Any) -> tuple[bool, int]:
    """``capture_content`` and ``content_max_chars``, the environment filling in what the
    arguments leave as ``None``; a bad value (argument or variable) is a ConfigurationError."""
    if capture is None:
        raw = os.environ.get("VIVIDLY_TRACE_CAPTURE_CONTENT", "").strip().lower()
        if raw and raw not in _TRUE + _FALSE:
            raise ConfigurationError(
                f"VIVIDLY_TRACE_CAPTURE_CONTENT must be true or false (1/0, yes/no, on/off), "
                f"got {show(raw)}"
            )
        capture = raw in _TRUE
    elif not isinstance(capture, bool):
        raise ConfigurationError(
            f"configure(): capture_content must be a bool or None, got {show(capture)}"
        )
    if max_chars is None:
        raw = os.environ.get("VIVIDLY_TRACE_CONTENT_MAX_CHARS", "").strip()
        if not raw:
            return capture, DEFAULT_CONTENT_MAX_CHARS
        try:
            max_chars = int(raw, 10)
        except ValueError:
            max_chars = None
        if max_chars is None or not 1 <= max_chars <= _MAX_CONTENT_CHARS:
            raise ConfigurationError(
                f"VIVIDLY_TRACE_CONTENT_MAX_CHARS must be an int in [1, {_MAX_CONTENT_CHARS}], "
                f"got {show(raw)}"
            )
        return capture, max_chars
    _number("content_max_chars", max_chars, lo=1, hi=_MAX_CONTENT_CHARS, integer=True)
    return capture, max_chars


def swap_pipeline(pipeline: Any) -> Any:
    """Install ``pipeline`` and return the one it replaces, which keeps running (tests)."""
    with state.lock:
        old = state.pipeline
        _set(pipeline)
    return old


def _set(pipeline: Any) -> None:
    state.pipeline = pipeline
    active = isinstance(pipeline, Pipeline)
    state.sinks = pipeline.sinks if active else ()
    if active and pipeline.capture_clients:
        # Imported here, not by ``import vividly_trace``: capture is what configure() sets up.
        from . import integrations

        integrations.install()
    else:
        installed = sys.modules.get(f"{__package__}.integrations")
        if installed is not None:
            installed.uninstall()


def _pricing(pricing: Any) -> PricingTable:
    from .pricing import PricingTable  # the price table loads with the first pipeline

    if pricing is None:
        return PricingTable.default()
    if isinstance(pricing, PricingTable):
        return pricing
    try:
        if isinstance(pricing, (str, Path)):
            return PricingTable.load(pricing)
        if isinstance(pricing, Mapping):
            return PricingTable.default().with_overrides(pricing)
    except ConfigurationError:
        raise
    except Exception as exc:  # a hostile mapping or path: still a configuration error
        raise ConfigurationError(
            f"configure(): unusable pricing {show(pricing)}: {type(exc).__name__}"
        ) from None
    raise ConfigurationError(
        "configure(): pricing must be a PricingTable, a file path or a mapping of overrides"
    )


def _spool_path(spool_dir: Any) -> Path:
    """``spool_dir`` as a Path the file system accepts, or ConfigurationError."""
    try:
        path = Path(spool_dir)
        os.fsencode(path)  # a name the OS cannot take (e.g. lone surrogates) fails here
    except Exception:
        raise ConfigurationError(
            f"configure(): spool_dir must be a directory path or False, got {show(spool_dir)}"
        ) from None
    return path


def _default_sinks() -> list[Any]:
    from .sinks import sink_from_spec

    return [sink_from_spec("sql")]


def _install(pipeline: Pipeline | None) -> None:
    with state.lock:
        old = state.pipeline
        _set(pipeline)
    install_exit_hook(_at_exit)
    if isinstance(old, Pipeline) and old is not pipeline:
        old.shutdown(old.shutdown_timeout)


def _env_disabled() -> bool:
    value = os.environ.get("VIVIDLY_TRACE_DISABLED", "").strip().lower()
    return value in ("1", "true", "yes", "on")


def _from_environment() -> Pipeline | None:
    """Read ``VIVIDLY_TRACE_*`` once, before any configure()."""
    with state.lock:
        if state.pipeline is not UNSET:
            return state.pipeline  # type: ignore[no-any-return]
        env = os.environ
        disabled = env.get("VIVIDLY_TRACE_DISABLED", "").strip().lower()
        if disabled in ("1", "true", "yes", "on"):
            _set(None)
            return None
        if disabled not in ("", "0", "false", "no", "off"):
            logger.warning("VIVIDLY_TRACE_DISABLED=%r is not a boolean; ignored", disabled)
        specs = env.get("VIVIDLY_TRACE_SINKS", "").strip()
        url = env.get("VIVIDLY_TRACE_DATABASE_URL", "").strip()
        if not specs and not url:
            _set(None)
            if not state.env_warned:
                state.env_warned = True
                logger.warning(
                    "vividly_trace is not configured: records are discarded until configure() "
                    "is called (or VIVIDLY_TRACE_SINKS / VIVIDLY_TRACE_DATABASE_URL is set)"
                )
            return None
        from .sinks import sink_from_spec

        try:
            sinks = [sink_from_spec(s.strip()) for s in specs.split(",") if s.strip()] or [
                sink_from_spec("sql")
            ]
            configure(sinks=sinks)
        except Exception as exc:
            logger.warning("vividly_trace: bad environment configuration, disabled: %s", exc)
            _set(None)
        return state.pipeline  # type: ignore[no-any-return]


state.load_environment = _from_environment


def get_pipeline() -> Pipeline | None:
    """The active pipeline, reading the environment on first use."""
    p = state.pipeline
    if p is UNSET:
        return _from_environment()
    return p  # type: ignore[no-any-return]


def current_pricing() -> PricingTable:
    """The configured price table (the packaged one when not configured)."""
    p = state.pipeline
    if isinstance(p, Pipeline):
        return p.pricing
    from .pricing import PricingTable

    return PricingTable.default()


def _timeout(caller: str, value: Any, default: float) -> float:
    """A call-time ``timeout`` argument: a bad one is a warning and ``default``, never an
    exception (these run in ``finally`` blocks and exit handlers)."""
    if value is None:
        return default
    if type(value) in (int, float) and value == value and value >= 0:
        return float(min(value, 86400))
    logger.warning(
        "vividly_trace.%s(): timeout=%s is not a number of seconds; using %s",
        caller,
        show(value),
        default,
    )
    return default


def flush(timeout: float = 5.0) -> bool:
    """Wait until every record handed over so far is written, spooled or counted.

    Returns ``False`` when ``timeout`` seconds passed first.

    .. versionadded:: 0.1.0
    """
    p = state.pipeline
    if not isinstance(p, Pipeline):
        return True
    timeout = _timeout("flush", timeout, 5.0)
    try:
        return p.flush(timeout)
    except Exception as exc:
        internal_error("flush", exc, "vividly_trace flush failed: %r", exc)
        return False


def shutdown(timeout: float | None = None) -> bool:
    """Flush within ``timeout`` (default: the configured ``shutdown_timeout``), stop the
    workers, close the sinks, and go back to the unconfigured state.

    .. versionadded:: 0.1.0
    """
    with state.lock:
        p = state.pipeline
        _set(None)
    if not isinstance(p, Pipeline):
        return True
    timeout = _timeout("shutdown", timeout, p.shutdown_timeout)
    try:
        return p.shutdown(timeout, finalise_streams=True)
    except Exception as exc:
        internal_error("shutdown", exc, "vividly_trace shutdown failed: %r", exc)
        return False


def reset() -> None:
    """Shut down and forget all configuration, as if the process had just started (tests)."""
    shutdown(timeout=5.0)
    with state.lock:
        _set(UNSET)
        state.env_warned = False


def stats() -> dict[str, Any]:
    """Counters of the active set-up.

    ``{"mode", "sampled_out", "enqueued", "written", "dropped": {reason: n},
    "sinks": {name: {"enqueued", "queued", "written", "failed_batches", "retries",
    "spooled", "replayed", "spool_pending", "dropped": {reason: n}}},
    "scores": {"enqueued", "written", "invalid", "sinks": {name.scores: {...}}}}``; a
    score dropped counts in ``dropped`` as ``score_<reason>``.

    .. versionadded:: 0.1.0
    """
    p = state.pipeline
    if not isinstance(p, Pipeline):
        return {
            "mode": "disabled",
            "sampled_out": 0,
            "enqueued": 0,
            "written": 0,
            "dropped": {},
            "sinks": {},
            "scores": {"enqueued": 0, "written": 0, "invalid": 0, "sinks": {}},
        }
    return p.stats()


def _at_exit() -> None:
    p = state.pipeline
    if isinstance(p, Pipeline):
        with contextlib.suppress(Exception):  # never fail interpreter exit
            p.shutdown(p.shutdown_timeout, finalise_streams=True)
