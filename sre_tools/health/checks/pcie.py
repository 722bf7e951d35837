"""Health checks: pcie (filled in by the health engine work)."""
