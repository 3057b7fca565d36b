"""Google Cloud Logging: records as structured log entries, through the API or on stdout.

API mode sends one ``entries:write`` request per batch through ``google-cloud-logging``'s
REST client; stdout mode prints the JSON lines Google's logging agents read (Cloud Run, GKE,
Cloud Functions) and needs no Google package (see
:class:`~vividly_trace.sinks.StructuredStdoutSink`).
"""

from __future__ import annotations

import copy
import functools
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import IO, Any
from urllib.parse import quote

from .._record import PromptExecution, format_timestamp
from ..exceptions import ConfigurationError, MissingExtraError, RecordsRejected
from ._fit import entry_size, fit_payload
from .structured_stdout import (
    StructuredStdoutSink,
    format_message,
    record_labels,
    resolve_project,
    trace_context,
    validate_labels,
)

__all__ = ["CloudLoggingSink"]

_MODES = ("api", "stdout")
_LOG_NAME = re.compile(r"[A-Za-z0-9_./-]{1,511}")
#: entries.write accepts at most 1000 entries and 10 MB per request; 256 KB per entry.
_MAX_ENTRIES_PER_REQUEST = 1000
_MAX_REQUEST_BYTES = 9_000_000
_MAX_ENTRY_BYTES = 250_000


def _import_logging() -> Any:
    try:
        import google.cloud.logging
    except ImportError:
        raise MissingExtraError("CloudLoggingSink", "gcp", "google-cloud-logging") from None
    return google.cloud.logging


def _resource_dict(resource: Any, project: str) -> dict[str, Any]:
    if resource is None:
        return {"type": "global", "labels": {"project_id": project}}
    if isinstance(resource, Mapping):
        kind, labels = resource.get("type"), resource.get("labels", {})
    else:  # google.cloud.logging.Resource (a namedtuple of type and labels)
        kind, labels = getattr(resource, "type", None), getattr(resource, "labels", None)
    if not isinstance(kind, str) or not kind:
        raise ConfigurationError(
            "CloudLoggingSink: resource must be a google.cloud.logging.Resource or a mapping "
            "with a non-empty 'type'"
        )
    if not isinstance(labels, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in labels.items()
    ):
        raise ConfigurationError("CloudLoggingSink: resource labels must map str to str")
    return {"type": kind, "labels": dict(labels)}


class CloudLoggingSink:
    """Send records to Google Cloud Logging as structured entries.

    **API mode** (``mode="api"``, the default) writes through ``google-cloud-logging``'s
    REST client (``_use_grpc=False``), one ``entries:write`` request per batch (a batch over
    1000 entries or about 9 MB is split). Each record becomes one entry::

        {"logName": "projects/P/logs/vividly_trace",    # log_name, "/" encoded as %2F
         "resource": {"type": "global", "labels": {"project_id": "P"}},
         "severity": "INFO",                            # "ERROR" when the call failed
         "timestamp": "2026-03-30T12:00:00.123456Z",    # the record's started_at
         "insertId": "<execution_id>",                  # retries never duplicate
         "labels": {"template_key": "nlu_extraction",   # + labels=, version and group
                    "template_version": "v3",           #   only when non-empty
                    "ab_test_group": "B"},
         "jsonPayload": {"message": "nlu_extraction ok 123.4 ms", **record.to_dict()},
         "trace": "projects/P/traces/<32 hex>",         # these three only when the
         "spanId": "<16 hex>",                          # record's metadata carries a
         "traceSampled": true}                          # trace context

    The trace context comes from the record's metadata (``traceparent``, or ``trace_id`` /
    ``span_id`` / ``trace_sampled``): see :mod:`vividly_trace.sinks.structured_stdout`.
    ``jsonPayload`` holds every field of :meth:`PromptExecution.to_dict` plus
    ``message``. An entry never exceeds Cloud Logging's 256 KB limit (which would fail the
    whole request): one that would is cut, never dropped. Its longest texts
    (``prompt_text``, ``response_text``, ``error_message``, string values in
    ``metadata``) lose characters, each ending with ``...[truncated N chars]``, until it
    fits (see :mod:`vividly_trace.sinks._fit`). :meth:`counters` (also in
    :func:`vividly_trace.stats`) counts ``truncated_entries`` and ``truncated_fields``.

    Nothing is looked up on the network at call time. Credentials are resolved here, in
    the constructor: ``credentials=`` as given (``AnonymousCredentials()`` for tests and
    emulators), else ``google.auth.default()`` (which may probe the GCE metadata server
    once, now). The project is ``project=``, else ``$GOOGLE_CLOUD_PROJECT``, else the one
    ``google.auth.default()`` found, else :class:`ConfigurationError`. The monitored
    resource is always sent (default ``global`` with the project's id), so the library
    never asks the metadata server to detect one. Token refreshes of real credentials
    still happen in the sink's worker, as part of a write, bounded by ``timeout`` too.

    ``write_batch`` raises when a request fails (an HTTP error status, a timeout, a
    connection error) and the dispatcher retries with backoff, then spools. The client's
    own retry does not get in the way: the REST path of ``google-cloud-logging`` has no
    retry, and every request is bounded by ``timeout`` seconds (connect and read).

    **Stdout mode** (``mode="stdout"``) writes the lines of
    :class:`~vividly_trace.sinks.StructuredStdoutSink` to ``stream`` (default
    ``sys.stdout``) and needs no Google package; ``log_name`` is ignored (the agent picks
    the log) and ``project`` is optional (used for the trace key).

    Args:
        project: the Google Cloud project id.
        log_name: the log id (``[A-Za-z0-9_./-]``, up to 511 characters).
        mode: ``"api"`` or ``"stdout"``.
        resource: a ``google.cloud.logging.Resource`` or ``{"type": ..., "labels": {...}}``.
        labels: extra labels (str to str) on every entry.
        credentials: ``google.auth`` credentials (API mode).
        client: a ``google.cloud.logging.Client`` built with ``_use_grpc=False`` to use
            instead of building one (then ``credentials`` and ``client_options`` must be
            left out); it is not closed by :meth:`close`.
        client_options: passed to the client, e.g. ``{"api_endpoint": "http://..."}``.
        name: the sink's name in :func:`vividly_trace.stats`.
        timeout: seconds a request may take before it fails (API mode).
        max_batch_size: records per batch, read by the dispatcher (default: the
            ``batch_size`` of :func:`vividly_trace.configure`).
        stream: the text stream of stdout mode.

    Raises:
        ConfigurationError: a bad argument, no project, or no default credentials.
        MissingExtraError: API mode without ``google-cloud-logging`` installed.

    .. versionadded:: 0.1.0
    """

    wants_trace_context = True
    """The span active at each call is recorded (``traceparent``), to join its trace."""

    def __init__(
        self,
        *,
        project: str | None = None,
        log_name: str = "vividly_trace",
        mode: str = "api",
        resource: Any = None,
        labels: Mapping[str, str] | None = None,
        credentials: Any = None,
        client: Any = None,
        client_options: Any = None,
        name: str = "cloud_logging",
        timeout: float = 10.0,
        max_batch_size: int | None = None,
        stream: IO[str] | None = None,
    ) -> None:
        if mode not in _MODES:
            raise ConfigurationError(
                f"CloudLoggingSink: mode must be 'api' or 'stdout', got {mode!r}"
            )
        if not isinstance(name, str) or not name:
            raise ConfigurationError("CloudLoggingSink: name must be a non-empty str")
        if not isinstance(log_name, str) or not _LOG_NAME.fullmatch(log_name):
            raise ConfigurationError(
                f"CloudLoggingSink: log_name must be 1-511 characters of [A-Za-z0-9_./-], got "
                f"{log_name!r}"
            )
        if (
            isinstance(timeout, bool)
            or not isinstance(timeout, (int, float))
            or not math.isfinite(timeout)
            or not 0 < timeout <= 600
        ):
            raise ConfigurationError(
                f"CloudLoggingSink: timeout must be in (0, 600] seconds, got {timeout!r}"
            )
        if max_batch_size is not None and (
            isinstance(max_batch_size, bool)
            or not isinstance(max_batch_size, int)
            or not 1 <= max_batch_size <= _MAX_ENTRIES_PER_REQUEST
        ):
            raise ConfigurationError(
                f"CloudLoggingSink: max_batch_size must be an int in [1, "
                f"{_MAX_ENTRIES_PER_REQUEST}], got {max_batch_size!r}"
            )
        self.name = name
        self.mode = mode
        self.log_name = log_name
        self.timeout = float(timeout)
        self.max_batch_size = max_batch_size
        self.labels = validate_labels("CloudLoggingSink", labels)
        self.truncated_entries = 0
        self.truncated_fields = 0
        self._client: Any = None
        self._owns_client = False
        self._api: Any = None
        self._stdout: StructuredStdoutSink | None = None
        self.resource: dict[str, Any] | None = None
        self.log_name_path: str | None = None
        if mode == "stdout":
            given = [
                n
                for n, v in (
                    ("resource", resource),
                    ("credentials", credentials),
                    ("client", client),
                    ("client_options", client_options),
                )
                if v is not None
            ]
            if given:
                raise ConfigurationError(
                    f"CloudLoggingSink: {', '.join(given)} only apply to mode='api'"
                )
            self._stdout = StructuredStdoutSink(stream, name, project, labels=self.labels)
            self.project: str | None = self._stdout.project
            return
        if stream is not None:
            raise ConfigurationError("CloudLoggingSink: stream only applies to mode='stdout'")
        gcl = _import_logging()
        project = resolve_project(project, "CloudLoggingSink")
        if client is not None:
            if credentials is not None or client_options is not None:
                raise ConfigurationError(
                    "CloudLoggingSink: pass either client= or credentials=/client_options="
                )
            if getattr(client, "_use_grpc", False):
                raise ConfigurationError(
                    "CloudLoggingSink: the client must use the REST transport "
                    "(google.cloud.logging.Client(..., _use_grpc=False))"
                )
            project = project or getattr(client, "project", None)
        else:
            if credentials is None:
                credentials, found = _default_credentials()
                project = project or found
            if not project:
                raise ConfigurationError(
                    "CloudLoggingSink: no Google Cloud project: pass project= or set "
                    "GOOGLE_CLOUD_PROJECT"
                )
            client = gcl.Client(
                project=project,
                credentials=credentials,
                client_options=client_options,
                _use_grpc=False,
            )
            self._owns_client = True
        if not isinstance(project, str) or not project:
            raise ConfigurationError("CloudLoggingSink: the client has no project: pass project=")
        self.project = project
        self.resource = _resource_dict(resource, project)
        self.log_name_path = f"projects/{project}/logs/{quote(log_name, safe='')}"
        self._client = client
        # A private copy of the client's REST logging API whose requests carry our timeout,
        # so the user's client (if any) is left as it was.
        api = copy.copy(client.logging_api)
        if not callable(getattr(api, "api_request", None)) or not callable(
            getattr(api, "write_entries", None)
        ):
            raise ConfigurationError("CloudLoggingSink: the client's logging_api is not REST")
        api.api_request = functools.partial(api.api_request, timeout=self.timeout)
        self._api = api

    # -- entries ---------------------------------------------------------------------------
    def entry(self, record: PromptExecution) -> dict[str, Any]:
        """The ``LogEntry`` (JSON) sent for ``record`` in API mode."""
        payload: dict[str, Any] = {"message": format_message(record)}
        payload.update(record.to_dict())
        entry: dict[str, Any] = {
            "logName": self.log_name_path,
            "resource": self.resource,
            "severity": "INFO" if record.success else "ERROR",
            "timestamp": format_timestamp(record.started_at),
            "insertId": record.execution_id,
            "labels": record_labels(record, self.labels),
            "jsonPayload": payload,
        }
        ctx = trace_context(record)
        if ctx is not None:
            entry["trace"] = f"projects/{self.project}/traces/{ctx.trace_id}"
            if ctx.span_id is not None:
                entry["spanId"] = ctx.span_id
            if ctx.sampled is not None:
                entry["traceSampled"] = ctx.sampled
        return entry

    def _sized(self, record: PromptExecution) -> tuple[dict[str, Any], int]:
        entry = self.entry(record)
        size = entry_size(entry)
        if size > _MAX_ENTRY_BYTES:
            fitted = fit_payload(entry, entry["jsonPayload"], _MAX_ENTRY_BYTES, size)
            self.truncated_entries += 1
            self.truncated_fields += fitted.cut + len(fitted.replaced)
            size = fitted.size
        return entry, size

    def counters(self) -> dict[str, int]:
        """``truncated_entries`` (entries cut to fit 256 KB) and ``truncated_fields``
        (texts cut in them); shown in :func:`vividly_trace.stats` under this sink."""
        if self._stdout is not None:
            return self._stdout.counters()
        return {
            "truncated_entries": self.truncated_entries,
            "truncated_fields": self.truncated_fields,
        }

    def _requests(self, records: Sequence[PromptExecution]) -> Iterator[list[dict[str, Any]]]:
        chunk: list[dict[str, Any]] = []
        total = 0
        for record in records:
            entry, size = self._sized(record)
            if chunk and (
                len(chunk) >= _MAX_ENTRIES_PER_REQUEST or total + size > _MAX_REQUEST_BYTES
            ):
                yield chunk
                chunk, total = [], 0
            chunk.append(entry)
            total += size
        if chunk:
            yield chunk

    def after_fork(self) -> None:
        """In a forked child: renew the stdout writer's lock (API mode holds none)."""
        if self._stdout is not None:
            self._stdout.after_fork()

    @property
    def spool_key(self) -> str:
        """The destination, for the spool: mode, project and log."""
        return f"cloud_logging:{self.mode}:{self.project}:{self.log_name}"

    # -- Sink protocol ---------------------------------------------------------------------
    def write_batch(self, records: Sequence[PromptExecution]) -> None:
        """Write the batch (one ``entries:write`` request); raise if Cloud Logging refuses.

        Raises the ``google.api_core`` exception of an HTTP error status (e.g.
        ``ServiceUnavailable`` for 503) or the ``requests`` exception of a timeout or a
        connection failure; the dispatcher retries the whole batch, and ``insertId``
        keeps entries that were already written from being duplicated.
        """
        if self._stdout is not None:
            self._stdout.write_batch(records)
            return
        for entries in self._requests(records):
            try:
                self._api.write_entries(entries, partial_success=True)
            except Exception as exc:
                code = getattr(exc, "code", None)
                if code in _PERMANENT_STATUSES:
                    raise RecordsRejected(
                        f"Cloud Logging refused the batch ({code}): retrying cannot help",
                        reason="rejected_by_cloud_logging",
                    ) from exc
                raise

    def close(self) -> None:
        """Close the HTTP session of a client this sink built (a given client is left open)."""
        if self._stdout is not None:
            self._stdout.close()
            return
        if self._owns_client and self._client is not None:
            close = getattr(self._client, "close", None)
            if callable(close):
                close()


# 400 (invalid argument) and 413 (too large) fail the same way on every retry; 401/403
# (credentials, permissions) and 404 (log or project) are kept in the spool so that the
# records reach Cloud Logging once the configuration is fixed.
_PERMANENT_STATUSES = frozenset({400, 413})


def _default_credentials() -> tuple[Any, str | None]:
    import google.auth
    from google.auth.exceptions import DefaultCredentialsError

    try:
        credentials, project = google.auth.default()
    except DefaultCredentialsError as exc:
        raise ConfigurationError(
            f"CloudLoggingSink: no Google credentials found ({exc}); pass credentials= "
            "or set up Application Default Credentials"
        ) from None
    return credentials, project
