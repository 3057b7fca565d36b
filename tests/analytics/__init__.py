"""Analytics tests."""
