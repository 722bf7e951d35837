"""SLOs: specs (OpenSLO v1, Sloth prometheus/v1), error-budget math, rule generation, reports."""
