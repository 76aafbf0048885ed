"""alerts (arrives with its own issue)."""
