"""Analytics over the SQL store."""
