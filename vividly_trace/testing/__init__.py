"""Test helpers for users of vividly_trace.

- :mod:`vividly_trace.testing.fake_gemini`: a fake Gemini API server on 127.0.0.1 that the
  real ``google-genai`` and ``google-generativeai`` clients talk to (``FakeGeminiServer``,
  ``Scenario``).
- :mod:`vividly_trace.testing.fake_logging`: a fake Cloud Logging ``entries:write`` endpoint.
- :mod:`vividly_trace.testing.otlp_collector`: an OTLP/HTTP collector stub.
- :mod:`vividly_trace.testing.postgres`: a throwaway PostgreSQL server (Debian's package).

Each module is imported on its own, so that using one needs no other's dependencies. For
records in a test, configure a :class:`vividly_trace.sinks.MemorySink` with ``sync=True``.
"""

__all__: list[str] = []
