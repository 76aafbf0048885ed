"""demo (arrives with its own issue)."""
