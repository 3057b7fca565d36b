"""An ad-hoc ``with`` block around a call that is not worth its own function.

Also shows ``set_usage`` / ``set_model`` for a call whose response is not a Gemini object,
and the embedded default store: ``configure()`` with no sinks writes to ``vividly_trace.db``.

Run: ``python examples/adhoc_block.py`` (offline unless GEMINI_API_KEY is set).
"""

from __future__ import annotations

from typing import Any

from vividly_trace import logged_prompt


def summarise(client: Any, text: str) -> str:
    """Summarise ``text``, logged as template ``adhoc_summary``."""
    with logged_prompt("adhoc_summary", model="gemini-2.5-flash-lite") as call:
        response = client.models.generate_content(
            model="gemini-2.5-flash-lite", contents=f"Summarise in one line: {text}"
        )
        call.metadata["chars"] = len(text)
    return str(response.text or "")


def main() -> None:
    """Summarise a text, log to the default SQLite file, print the record."""
    from vividly_trace.examples._runtime import gemini_client

    import vividly_trace
    from vividly_trace.sinks import MemorySink

    sink = MemorySink()
    vividly_trace.configure(sinks=[sink], spool_dir=False)
    with gemini_client() as client:
        print(summarise(client, "The quick brown fox jumps over the lazy dog. " * 5))
    # A call whose usage comes from elsewhere (a batch job's report, another SDK...):
    with logged_prompt("adhoc_summary") as call:
        call.set_model("gemini-2.5-flash-lite")
        call.set_usage(input_tokens=1200, output_tokens=80)
    vividly_trace.flush()
    for rec in sink.records:
        print(rec.execution_id, rec.template_key, rec.total_token_count, f"${rec.cost_usd}")


if __name__ == "__main__":
    main()
