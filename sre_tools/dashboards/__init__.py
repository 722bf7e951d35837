"""Grafana dashboards as code: generated from the metric and rule names the package defines."""
