"""Test helpers for users of vividly_trace: a fake Gemini server and fixtures."""
