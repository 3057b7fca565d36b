"""SQL store tests."""
