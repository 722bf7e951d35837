"""sre_tools: the one engine behind every front end (CLI, exporter, Ansible, Salt, drills)."""

__version__ = "0.1.0"
