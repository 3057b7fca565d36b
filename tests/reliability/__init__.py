"""The reliability suite."""
