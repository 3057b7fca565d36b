"""Example services instrumented with vividly_trace (shipped as ``vividly_trace.examples``)."""
