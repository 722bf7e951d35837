"""Read SLO specs from text: OpenSLO v1 and Sloth (``prometheus/v1`` and the
``sloth.slok.dev/v1`` ``PrometheusServiceLevel`` resource), several documents per file and several
files at once. OpenSLO references resolve across all files given together.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sre_tools.exceptions import ValidationError
from sre_tools.inputs import MAX_SPEC_BYTES, load_yaml_documents, read_text_capped
from sre_tools.slo import fields as f
from sre_tools.slo.model import SLO
from sre_tools.slo.openslo import OpenSLOSet, check_object
from sre_tools.slo.sloth import load_sloth


def parse_documents(text: str, source: str) -> list[dict[str, Any]]:
    """Parse a multi-document YAML text into mappings (empty documents are skipped)."""
    docs = load_yaml_documents(text, source)
    out = []
    for i, doc in enumerate(docs):
        if doc is None:
            continue
        if not isinstance(doc, dict):
            raise ValidationError(
                f"document {i + 1}: expected a mapping at the top level", source=source
            )
        out.append(doc)
    return out


def load_texts(
    texts: Iterable[tuple[str, str]], *, period_seconds: float | None = None
) -> list[SLO]:
    """Load SLOs from ``(source name, text)`` pairs. Raises ValidationError naming file and field.

    ``period_seconds`` sets the period of Sloth specs (which carry none); OpenSLO specs always
    carry their own ``timeWindow``.
    """
    openslo = OpenSLOSet()
    slos: list[SLO] = []
    any_doc = False
    for source, text in texts:
        for doc in parse_documents(text, source):
            any_doc = True
            try:
                if "version" in doc and "apiVersion" not in doc:
                    slos.extend(load_sloth(doc, source, period_seconds=period_seconds))
                elif doc.get("apiVersion") == "sloth.slok.dev/v1":
                    slos.extend(_load_sloth_crd(doc, source, period_seconds))
                elif str(doc.get("apiVersion", "")).startswith("openslo/"):
                    openslo.add(check_object(doc, source))
                else:
                    raise ValidationError(
                        "not an SLO spec: expected 'version: prometheus/v1' (Sloth) or "
                        "'apiVersion: openslo/v1' (OpenSLO)",
                        field="apiVersion" if "apiVersion" in doc else "version",
                    )
            except ValidationError as exc:
                raise (exc if exc.source else exc.at(source)) from None
    slos.extend(openslo.slos())
    if not any_doc or not slos:
        names = ", ".join(s for s, _ in texts) if isinstance(texts, list) else "input"
        what = (
            "no SLO documents found"
            if not any_doc
            else ("no SLO found (only Service, SLI or alerting objects; add a kind: SLO)")
        )
        raise ValidationError(what, source=names)
    ensure_unique(slos)
    return slos


def _load_sloth_crd(doc: dict[str, Any], source: str, period: float | None) -> list[SLO]:
    if doc.get("kind") != "PrometheusServiceLevel":
        raise ValidationError(
            f"expected kind PrometheusServiceLevel, got {doc.get('kind')!r}", field="kind"
        )
    spec = f.mapping(f.required(doc, "spec", ""), "spec")
    inner = {"version": "prometheus/v1", **spec}
    try:
        return load_sloth(inner, source, period_seconds=period)
    except ValidationError as exc:
        raise exc.under("spec") from None


def ensure_unique(slos: list[SLO]) -> None:
    seen: dict[str, SLO] = {}
    for slo in slos:
        if slo.id in seen:
            other = seen[slo.id]
            raise ValidationError(
                f"SLO id {slo.id!r} is defined twice (also in {other.source})",
                source=slo.source,
                field="name",
            )
        seen[slo.id] = slo


def load_files(paths: Iterable[str], *, period_seconds: float | None = None) -> list[SLO]:
    """Read and load spec files (``-`` reads standard input)."""
    texts: list[tuple[str, str]] = []
    for path in paths:
        text, source = read_text_capped(path, MAX_SPEC_BYTES, what="spec")
        texts.append((source, text))
    if not texts:
        raise ValidationError("no spec files given")
    return load_texts(texts, period_seconds=period_seconds)
