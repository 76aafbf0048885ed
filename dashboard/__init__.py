"""dashboard (arrives with its own issue)."""
