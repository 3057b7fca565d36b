"""Cloud Logging's 256 KB entry limit: an entry that would exceed it is cut, never rejected.

The real google-cloud-logging client (REST) writes to the fake endpoint, which refuses a
request holding an entry over 256 KiB with 400 as Cloud Logging does (checked first, so
the other tests could fail).
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any

import pytest

pytest.importorskip("google.cloud.logging")
pytest.importorskip("google.genai")

from google.api_core import exceptions as api_exceptions
from google.auth.credentials import AnonymousCredentials as _Anonymous

import vividly_trace
from tests.factories import full_record
from vividly_trace import logged_prompt
from vividly_trace.sinks import CloudLoggingSink, StructuredStdoutSink
from vividly_trace.sinks._fit import entry_size
from vividly_trace.testing.fake_gemini import Scenario
from vividly_trace.testing.fake_logging import MAX_ENTRY_BYTES, FakeLoggingServer

AnonymousCredentials: Callable[[], Any] = _Anonymous
PROJECT = "vividly-test"
FLASH = "gemini-2.5-flash"
LIMIT = 250_000  # what the sink keeps an entry under (256 KiB = 262,144 bytes, with room)


def api_sink(fake: FakeLoggingServer) -> CloudLoggingSink:
    return CloudLoggingSink(
        project=PROJECT,
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": fake.url},
    )


def kept_and_cut(text: str, char: str) -> tuple[int, int]:
    """(characters kept, N of the marker) of a text of ``char`` cut by the sink."""
    kept = len(text) - len(text.lstrip(char))
    marker = text[kept:]
    assert marker.startswith("...[truncated ") and marker.endswith(" chars]"), marker
    return kept, int(marker[len("...[truncated ") : -len(" chars]")])


class TestTheFakeEnforcesTheLimit:
    def test_an_oversized_entry_is_refused(self, fake_logging: FakeLoggingServer) -> None:
        """The fake answers 400 to a request with an entry over 256 KiB (as the API does),
        so an entry the sink failed to cut would fail the whole batch."""
        client = fake_logging.client(PROJECT)
        entry = {
            "logName": f"projects/{PROJECT}/logs/x",
            "resource": {"type": "global"},
            "jsonPayload": {"prompt_text": "p" * MAX_ENTRY_BYTES},
        }
        with pytest.raises(api_exceptions.BadRequest, match="exceeds maximum size"):
            client.logging_api.write_entries([entry])
        entry["jsonPayload"] = {"prompt_text": "p" * 1000}
        client.logging_api.write_entries([entry])
        assert [r.status for r in fake_logging.write_requests()] == [400, 200]


class TestAOneMegabytePrompt:
    def test_through_a_logged_call(
        self, gemini: Any, fake_logging: FakeLoggingServer, client: Any
    ) -> None:
        """A 1 MB prompt captured in full (content_max_chars=2,000,000) reaches Cloud
        Logging as an entry under 256 KB, its prompt cut with the marker, its response and
        every other field whole; the cut is counted in the sink's stats."""
        sink = api_sink(fake_logging)
        vividly_trace.configure(
            sinks=[sink], sync=True, capture_content=True, content_max_chars=2_000_000
        )
        gemini.enqueue(Scenario(text="short answer", prompt_tokens=250_000, candidates_tokens=3))
        prompt = "q" * 1_000_000

        @logged_prompt("summarise")
        def summarise(text: str) -> str:
            return str(client.models.generate_content(model=FLASH, contents=text).text)

        assert summarise(prompt) == "short answer"
        assert vividly_trace.flush(5)
        (request,) = fake_logging.write_requests()
        assert request.status == 200
        (entry,) = request.entries
        assert entry_size(entry) <= LIMIT
        payload = entry["jsonPayload"]
        kept, cut = kept_and_cut(payload["prompt_text"], "q")
        assert kept + cut == 1_000_000
        assert kept > 200_000  # only what had to go went
        assert payload["response_text"] == "short answer"
        assert (payload["input_token_count"], payload["output_token_count"]) == (250_000, 3)
        stats = vividly_trace.stats()["sinks"]["cloud_logging"]
        assert (stats["truncated_entries"], stats["truncated_fields"]) == (1, 1)
        assert stats["written"] == 1 and stats["dropped"] == {}


class TestCutting:
    def test_the_longest_text_goes_first(self, fake_logging: FakeLoggingServer) -> None:
        """With a long prompt and a shorter response, only the prompt is cut when that is
        enough."""
        record = full_record(prompt_text="p" * 400_000, response_text="r" * 100_000)
        sink = api_sink(fake_logging)
        sink.write_batch([record])
        (entry,) = fake_logging.entries(accepted=True)
        assert entry_size(entry) <= LIMIT
        kept, cut = kept_and_cut(entry["jsonPayload"]["prompt_text"], "p")
        assert kept + cut == 400_000
        assert entry["jsonPayload"]["response_text"] == "r" * 100_000
        assert sink.counters() == {"truncated_entries": 1, "truncated_fields": 1}

    def test_both_texts_when_one_is_not_enough(self, fake_logging: FakeLoggingServer) -> None:
        """Two texts of 300,000 characters each: both are cut, each with its marker."""
        record = full_record(prompt_text="p" * 300_000, response_text="r" * 300_000)
        sink = api_sink(fake_logging)
        sink.write_batch([record])
        (entry,) = fake_logging.entries(accepted=True)
        assert entry_size(entry) <= LIMIT
        payload = entry["jsonPayload"]
        for name, char in (("prompt_text", "p"), ("response_text", "r")):
            kept, cut = kept_and_cut(payload[name], char)
            assert kept + cut == 300_000
        assert sink.counters() == {"truncated_entries": 1, "truncated_fields": 2}

    def test_multibyte_text(self, fake_logging: FakeLoggingServer) -> None:
        """Characters of four UTF-8 bytes (sent as \\u escapes by the client) still fit:
        the limit is on bytes, not characters."""
        record = full_record(response_text="\U0001f600" * 100_000)  # 400,000 bytes
        api_sink(fake_logging).write_batch([record])
        (entry,) = fake_logging.entries(accepted=True)
        assert entry_size(entry) <= LIMIT
        kept, cut = kept_and_cut(entry["jsonPayload"]["response_text"], "\U0001f600")
        assert kept + cut == 100_000

    def test_error_message_and_metadata_strings(self, fake_logging: FakeLoggingServer) -> None:
        """An error message and nested metadata strings are cut too (the longest first); a
        small entry in the same batch is untouched."""
        big = full_record(
            success=False,
            error_type="ValueError",
            error_message="e" * 150_000,
            metadata={"nested": {"notes": ["n" * 150_000, "short"]}, "tier": "pro"},
        )
        small = full_record()
        sink = api_sink(fake_logging)
        sink.write_batch([big, small])
        big_entry, small_entry = fake_logging.entries(accepted=True)
        assert entry_size(big_entry) <= LIMIT
        payload = big_entry["jsonPayload"]
        kept_e, cut_e = kept_and_cut(payload["error_message"], "e")
        notes = payload["metadata"]["nested"]["notes"]
        kept_n, cut_n = kept_and_cut(notes[0], "n")
        assert (kept_e + cut_e, kept_n + cut_n) == (150_000, 150_000)
        assert notes[1] == "short" and payload["metadata"]["tier"] == "pro"
        assert small_entry["jsonPayload"] == {"message": small_entry["jsonPayload"]["message"]} | (
            json.loads(json.dumps(small.to_dict()))
        )
        assert sink.counters() == {"truncated_entries": 1, "truncated_fields": 2}

    def test_many_short_metadata_values(self, fake_logging: FakeLoggingServer) -> None:
        """Metadata too big in many short values (no text long enough to cut) is replaced
        by a note: the entry is still written."""
        metadata = {f"k{i:05d}": "v" * 40 for i in range(6000)}  # ~330 KB of short values
        api_sink(fake_logging).write_batch([full_record(metadata=metadata)])
        (entry,) = fake_logging.entries(accepted=True)
        assert entry_size(entry) <= LIMIT
        assert set(entry["jsonPayload"]["metadata"]) == {"vividly_trace_truncated"}


class TestStdoutLines:
    def test_a_line_is_cut_to_fit(self) -> None:
        """Structured stdout lines (one Cloud Logging entry each on Cloud Run) are cut the
        same way, and counted."""
        stream = io.StringIO()
        sink = StructuredStdoutSink(stream)
        sink.write_batch([full_record(prompt_text="p" * 1_000_000), full_record()])
        big, small = (json.loads(line) for line in stream.getvalue().splitlines())
        assert entry_size(big) <= LIMIT
        kept, cut = kept_and_cut(big["prompt_text"], "p")
        assert kept + cut == 1_000_000
        assert "prompt_text" in small and small["prompt_text"] is None
        assert sink.counters() == {"truncated_entries": 1, "truncated_fields": 1}

    def test_cloud_logging_stdout_mode_counts(self) -> None:
        """CloudLoggingSink(mode="stdout") reports its lines' cuts."""
        stream = io.StringIO()
        sink = CloudLoggingSink(mode="stdout", stream=stream, project=PROJECT)
        sink.write_batch([full_record(response_text="r" * 300_000)])
        (line,) = stream.getvalue().splitlines()
        assert len(line.encode()) <= LIMIT
        assert sink.counters() == {"truncated_entries": 1, "truncated_fields": 1}
