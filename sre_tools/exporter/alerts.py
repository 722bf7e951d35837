"""The packaged GPU health alert rules, optionally with runbook links made absolute.

The rules file (``sre_tools/data/alerts/gpu-health.rules.yml``) links each alert to a runbook by a
repository-relative path (``runbooks/gpu-ecc.md#uncorrected``) so that tests can check every link.
Deployments point them at where the runbooks are published with a base URL.
"""

from __future__ import annotations

from importlib import resources

RULES_FILE = "gpu-health.rules.yml"
RUNBOOK_PREFIX = "runbooks/"


def rules_text() -> str:
    return (resources.files("sre_tools") / "data" / "alerts" / RULES_FILE).read_text(
        encoding="utf-8"
    )


def with_runbook_base(text: str, base: str | None) -> str:
    """``runbook_url: runbooks/x.md#a`` -> ``runbook_url: BASE/x.md#a`` (line by line, so the
    file's comments and layout survive)."""
    if not base:
        return text
    prefix = base.rstrip("/") + "/"
    out = []
    for line in text.splitlines(keepends=True):
        key, sep, value = line.partition("runbook_url:")
        stripped = value.strip()
        if sep and not key.strip() and stripped.startswith(RUNBOOK_PREFIX):
            target = stripped[len(RUNBOOK_PREFIX) :]
            newline = "\n" if line.endswith("\n") else ""
            out.append(f"{key}runbook_url: {prefix}{target}{newline}")
            continue
        out.append(line)
    return "".join(out)
