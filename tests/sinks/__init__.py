"""Sink tests."""
