"""Test helpers for users of vividly_trace.

- :mod:`vividly_trace.testing.fake_gemini`: a fake Gemini API server on 127.0.0.1 that the
  real ``google-genai`` and ``google-generativeai`` clients talk to (``FakeGeminiServer``,
  ``Scenario``).
- :mod:`vividly_trace.testing.fake_logging`: a fake Cloud Logging ``entries:write`` endpoint.
- :mod:`vividly_trace.testing.otlp_collector`: an OTLP/HTTP collector stub.
- :mod:`vividly_trace.testing.postgres`: a throwaway PostgreSQL server (Debian's package).

Each module is imported on its own, so that using one needs no other's dependencies. For
the records of the calls a test makes, use :func:`capture_records`.
"""

from ._capture import CapturedRecords, capture_records

__all__ = ["CapturedRecords", "capture_records"]
