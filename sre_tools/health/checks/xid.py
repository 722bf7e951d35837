"""Health checks: xid (filled in by the health engine work)."""
