"""Security: secrets never reach a record, a spool, a store or a log line; SQL injection
payloads are stored verbatim (and harm nothing).

The secrets are fake but distinctive (``reliability_helpers.SECRETS``): a Gemini API key in
``GEMINI_API_KEY`` for the whole suite, a database password in the PostgreSQL URLs,
``Authorization`` headers (Bearer and Basic) and DSNs in error messages and metadata. The
session-wide scan (``conftest.SecretScan``) sees every log line, every file the tests
leave, every record and subprocess output they hand it; the last test asserts it found none.
"""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path
from typing import Any

import pytest

import vividly_trace
from tests.reliability.reliability_helpers import (
    API_KEY,
    BEARER_TOKEN,
    DB_PASSWORD,
    SECRETS,
    SHORT,
    VERSIONS,
    SecretError,
    dump_store,
    secret_metadata,
    secret_text,
    spool_files,
    store_ids,
    wait_until,
    with_password,
)
from vividly_trace import log_prompt_execution, logged_prompt
from vividly_trace.sinks import JSONLinesSink, MemorySink, SQLSink, StructuredStdoutSink

pytestmark = pytest.mark.reliability

SQL_PAYLOADS = [
    "'; DROP TABLE prompt_executions; --",
    "Robert'); DROP TABLE prompt_templates;--",
    '" OR "1"="1',
    "x' OR '1'='1' /*",
    "1; SELECT pg_sleep(30); --",
    "$$; DELETE FROM prompt_executions; $$",
    "$tag$ DROP TABLE prompt_templates $tag$",
    "\\'; TRUNCATE prompt_executions; --",
    "%s %s %(id)s ? :name $1",
    "é'; UPDATE prompt_templates SET total_executions = -1; --",
    "\\x00\\'\\\"",
    "COPY prompt_executions TO PROGRAM 'id'",
    "\t\r\n;\\.\n",
]


class Failing:
    """A sink that always fails with secrets in its error (an upstream echoing a request)."""

    name = "failing"
    spool_key = "reliability-failing"

    def write_batch(self, records: Any) -> None:
        raise SecretError(len(records))

    def close(self) -> None:
        pass


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_sql_injection_payloads_are_stored_verbatim(
    backend: str, tmp_path: Path, postgres_url: str, figures: Any
) -> None:
    """Template keys, versions, A/B groups, models, error messages and metadata keys and
    values that are SQL injection payloads are stored exactly as given (on SQLite and on
    PostgreSQL through COPY and through the INSERT fallback), and both tables are intact."""
    url = (
        f"sqlite:///{tmp_path / 'inject.db'}"
        if backend == "sqlite"
        else with_password(postgres_url)
    )
    sinks = [SQLSink(url)]
    if backend == "postgresql":
        sinks.append(SQLSink(url, name="insert", use_copy=False))
    vividly_trace.configure(sinks=sinks, flush_interval=0.05, spool_dir=tmp_path / "spool")
    sent: dict[str, tuple[str, ...]] = {}
    for i, payload in enumerate(SQL_PAYLOADS):
        eid = log_prompt_execution(
            payload,
            i % 2 == 0,
            1.0 + i,
            10,
            5,
            error_message=payload,
            metadata={payload: payload, "n": i},
            template_version=payload,
            ab_test_group=payload[:5],
            model=payload,
        )
        assert eid is not None
        sent[eid] = (payload, payload, payload[:5], payload)
    assert vividly_trace.flush(timeout=60)
    stats = vividly_trace.stats()["sinks"]
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT id, template_name, template_version, template_ab_test_group, model, "
                    "error_message, metadata FROM prompt_executions"
                )
            ).all()
            templates = conn.execute(sa.text("SELECT count(*) FROM prompt_templates")).scalar_one()
    finally:
        engine.dispose()
    wrong = []
    for row in rows:
        payload, version, group, model = sent[row[0]]
        meta = row[6] if isinstance(row[6], dict) else json.loads(row[6])
        if (row[1], row[2], row[3], row[4], row[5]) != (
            payload,
            version,
            group,
            model,
            payload,
        ) or meta.get(payload) != payload:
            wrong.append(row[0])
    figures.record(
        f"security: SQL injection payloads stored verbatim ({backend})",
        SHORT,
        payloads=len(SQL_PAYLOADS),
        rows=len(rows),
        rows_not_verbatim=len(wrong),
        templates=templates,
        sinks=", ".join(f"{k} wrote {v['written']}" for k, v in stats.items()),
    )
    assert len(rows) == len(SQL_PAYLOADS) == len(set(r[0] for r in rows))
    assert wrong == []
    assert templates == len(SQL_PAYLOADS)
    for name, s in stats.items():
        assert s["written"] == len(SQL_PAYLOADS) and s["dropped"] == {}, name


@pytest.mark.postgres
@pytest.mark.timeout(300)
@pytest.mark.parametrize("version", VERSIONS)
def test_secrets_are_masked_everywhere_they_are_written(
    version: str,
    tmp_path: Path,
    postgres_url: str,
    gemini: Any,
    secret_scan: Any,
    figures: Any,
) -> None:
    """Secrets handed to every entry point (error messages, exceptions, metadata under
    secret and ordinary keys, Authorization headers, DSNs with passwords, a Gemini API key
    used by the real google-genai and google-generativeai clients against the fake Gemini
    server, a PostgreSQL URL with a password, also one that refuses connections) end up
    in no record, store, spool file, structured output or log line; the masked places say
    `[REDACTED]`."""
    from google import genai
    from google.genai import types

    from vividly_trace.testing.fake_gemini import Scenario
    from vividly_trace.testing.postgres import PostgresServer

    rounds = 1 if version == SHORT else 20
    pg_url = with_password(postgres_url)
    closed = PostgresServer(tmp_path / "never_started").url_for("app")
    closed = with_password(closed)  # a server that is not running: connections refused
    db = tmp_path / "secrets.db"
    jsonl = tmp_path / "secrets.jsonl"
    stream = io.StringIO()
    memory = MemorySink()
    vividly_trace.configure(
        sinks=[
            memory,
            SQLSink(f"sqlite:///{db}"),
            SQLSink(pg_url, name="pg"),
            SQLSink(closed, name="pg_down", connect_timeout=1),
            JSONLinesSink(jsonl),
            StructuredStdoutSink(stream, project="p"),
            Failing(),
        ],
        flush_interval=0.05,
        max_retries=1,
        retry_backoff=0.01,
        spool_dir=tmp_path / "spool",
    )
    client = genai.Client(  # the API key comes from GEMINI_API_KEY
        http_options=types.HttpOptions(base_url=gemini.url, api_version="v1beta")
    )

    @logged_prompt(
        "secret_call",
        model="gemini-2.5-flash",
        metadata={"Authorization": f"Bearer {BEARER_TOKEN}", "dsn": secret_text(3)},
    )
    def call(i: int) -> Any:
        handle = vividly_trace.get_current_call()
        assert handle is not None
        handle.metadata.update(secret_metadata(i))
        return client.models.generate_content(model="gemini-2.5-flash", contents="hi")

    findings_before = len(secret_scan.findings)
    expected = 0
    for i in range(rounds):
        gemini.enqueue(
            Scenario(text="ok"),
            Scenario(
                error_status=401,
                error_message=f"API key not valid: {API_KEY} "
                f"(Authorization: Bearer {BEARER_TOKEN})",
            ),
        )
        assert call(i).text == "ok"
        with pytest.raises(Exception, match="API key not valid"):
            call(i)
        assert (
            log_prompt_execution(
                "secret_lpe", False, 3.0, error_message=secret_text(i), metadata=secret_metadata(i)
            )
            is not None
        )
        with pytest.raises(SecretError), logged_prompt("secret_with") as handle:
            handle.metadata["authorization"] = f"Basic {SECRETS['basic credentials']}"
            handle.metadata["free_text"] = secret_text(i + 1)
            raise SecretError(i)
        expected += 4
    old_client_calls = _old_client_call(gemini)
    expected += old_client_calls
    assert vividly_trace.flush(timeout=120)
    assert wait_until(lambda: len(set(store_ids(pg_url))) >= expected, 60)
    records = list(memory.records)
    assert len(records) == expected
    secret_scan.add_records("security test records", records)
    secret_scan.add_text("structured stdout", stream.getvalue())
    secret_scan.add_text("PostgreSQL rows", dump_store(pg_url))
    secret_scan.add_text("SQLite rows", dump_store(f"sqlite:///{db}"))
    secret_scan.add_tree(tmp_path)  # the SQLite file, the JSON lines, the spool
    findings_here = secret_scan.findings[findings_before:]
    redacted = sum("[REDACTED]" in (r.error_message or "") for r in records)
    redacted_meta = sum("[REDACTED]" in json.dumps(r.metadata) for r in records)
    stats = vividly_trace.stats()["sinks"]
    spooled = sum(len(f.read_bytes().splitlines()) for f in spool_files(tmp_path / "spool"))
    figures.record(
        "security: secrets masked in records, stores, spools, outputs",
        version,
        records=len(records),
        error_messages_redacted=redacted,
        metadata_redacted=redacted_meta,
        spooled_lines_scanned=spooled,
        failing_sink_batches=stats["failing"]["failed_batches"],
        refused_db_batches=stats["pg_down"]["failed_batches"],
        findings=len(findings_here),
    )
    assert findings_here == []
    assert redacted >= 3 * rounds
    assert redacted_meta == sum(1 for r in records if r.template_key != "secret_old_client")
    assert stats["failing"]["failed_batches"] > 0 and stats["pg_down"]["failed_batches"] > 0
    assert spooled > 0


def _old_client_call(gemini: Any) -> int:
    """One failing call through google-generativeai (REST, API key in the URL): the
    exception it raises names the request URL. Returns the records it made (0 or 1)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            import google.generativeai as old
        except ImportError:
            return 0
    from vividly_trace.testing.fake_gemini import Scenario

    gemini.configure_generativeai(api_key=API_KEY)
    model = old.GenerativeModel("gemini-2.5-flash")
    gemini.enqueue(Scenario(error_status=403, error_message=f"key={API_KEY} denied"))

    @logged_prompt("secret_old_client")
    def call() -> Any:
        return model.generate_content("hi")

    with pytest.raises(Exception):  # noqa: B017 - whatever the old client raises
        call()
    return 1


@pytest.mark.parametrize("version", VERSIONS)
def test_no_secret_anywhere(version: str, secret_scan: Any, figures: Any) -> None:
    """Runs last: across the whole reliability session (every log line, every file the
    tests left, every record and subprocess output handed to the scan) no fake API key,
    database password, Bearer or Basic credential appears. The scanner itself is checked
    on a canary first."""
    canary = type(secret_scan)()
    canary.add_text("canary", f"x {API_KEY} y {DB_PASSWORD}")
    assert len(canary.findings) == 2, "the scan does not find secrets"
    figures.record(
        "security: no secret in any record or log line (whole session)",
        version,
        log_lines=secret_scan.log_lines,
        records=secret_scan.records,
        files=secret_scan.files,
        texts_scanned=secret_scan.items,
        megabytes_scanned=round(secret_scan.bytes / 1e6, 1),
        findings=len(secret_scan.findings),
    )
    assert secret_scan.findings == [], "\n".join(secret_scan.findings[:20])
    assert secret_scan.items > 0


def test_log_lines_never_carry_secrets(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, figures: Any
) -> None:
    """Every path that logs a value or an exception the application handed over (a sink's
    error during a write and a replay, a failing redact hook, a raising usage extractor,
    rejected arguments of log_prompt_execution) writes no secret into the log line."""
    import logging

    from vividly_trace import register_extractor
    from vividly_trace._config import get_pipeline
    from vividly_trace.usage import unregister_extractor

    caplog.set_level(logging.DEBUG, logger="vividly_trace")

    def failing_redact(record: Any) -> Any:
        if record.template_key == "redact_me":
            raise SecretError(7)
        return record

    def raising_extractor(response: Any) -> Any:
        raise SecretError(8)

    vividly_trace.configure(
        sinks=[Failing()],
        redact=failing_redact,
        max_retries=0,
        flush_interval=0.02,
        spool_dir=tmp_path / "spool",
    )
    register_extractor(raising_extractor)
    try:
        log_prompt_execution("t", True, 1.0, error_message=secret_text(1))
        log_prompt_execution("redact_me", True, 1.0)
        log_prompt_execution(
            "t",
            True,
            1.0,
            input_token_count=secret_text(2),
            cost_usd=secret_text(3),
            template_version=SecretError(4),
        )
        log_prompt_execution(secret_text(5), "yes", secret_text(6))

        @logged_prompt("extracted")
        def f() -> dict[str, int]:
            return {"input_tokens": 1}

        f()
        assert vividly_trace.flush(timeout=30)
        pipeline = get_pipeline()
        assert pipeline is not None
        pipeline.workers[0].replay_spool()  # fails again: logged
    finally:
        unregister_extractor(raising_extractor)
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("vividly_trace")]
    leaks = [line for line in lines if any(s in line for s in SECRETS.values())]
    figures.record(
        "security: log lines of rejected values and failing sinks, hooks, extractors",
        SHORT,
        log_lines=len(lines),
        lines_with_a_secret=len(leaks),
    )
    assert any("replay" in line for line in lines), lines
    assert any("redact" in line for line in lines), lines
    assert leaks == [], leaks
