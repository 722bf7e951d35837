"""Loader for OpenSLO v1 (https://github.com/OpenSLO/OpenSLO, ``apiVersion: openslo/v1``).

Kinds: Service, SLI, SLO, AlertCondition, AlertPolicy, AlertNotificationTarget (and DataSource,
accepted for references). Objects may live in any of the files given; references
(``indicatorRef``, ``alertPolicyRef``, ``conditionRef``, ``targetRef``) resolve across all of them.

Mapping onto the model:

- ``ratioMetric`` with ``good``/``bad`` + ``total`` becomes an events SLI; ``raw`` with ``rawType``
  a raw SLI. Each Prometheus query becomes a ``{{.window}}`` template in
  :mod:`sre_tools.slo.query`: counters (``counter: true``) are rated, gauges and raw ratios
  averaged over the window; what it cannot window correctly is refused.
- Each objective becomes one SLO (named ``<slo>`` or ``<slo>-<displayName|index>`` when several).
- ``AlertPolicy`` gives the alert name and labels; its ``AlertCondition`` severities choose which
  alerts exist (``page``/``critical``/``high`` -> page, anything else -> ticket). Burn-rate windows
  come from the alert windows (defaults or ``--alert-windows``), so every alert is multi-window.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sre_tools.durations import parse_duration
from sre_tools.exceptions import ValidationError
from sre_tools.slo import fields as f
from sre_tools.slo.model import (
    SLO,
    Alerting,
    AlertSpec,
    BudgetingMethod,
    EventsSLI,
    RawSLI,
)
from sre_tools.slo.query import Kind, Windowed, window_query

API_VERSION = "openslo/v1"
KINDS = (
    "Service",
    "SLI",
    "SLO",
    "AlertCondition",
    "AlertPolicy",
    "AlertNotificationTarget",
    "DataSource",
)
PAGE_SEVERITIES = {"page", "critical", "high"}


@dataclass(frozen=True)
class Obj:
    kind: str
    name: str
    doc: dict[str, Any]
    source: str


def check_object(doc: dict[str, Any], source: str) -> Obj:
    """Validate the envelope (apiVersion, kind, metadata.name) of one OpenSLO document."""
    if doc.get("apiVersion") != API_VERSION:
        raise ValidationError(
            f"expected {API_VERSION!r}, got {doc.get('apiVersion')!r}",
            source=source,
            field="apiVersion",
        )
    kind = doc.get("kind")
    if kind not in KINDS:
        raise ValidationError(
            f"unknown kind {kind!r} (expected one of {', '.join(KINDS)})",
            source=source,
            field="kind",
        )
    try:
        f.no_extra(doc, {"apiVersion", "kind", "metadata", "spec"}, "")
        meta = f.mapping(f.required(doc, "metadata", ""), "metadata")
        name = f.name(f.required(meta, "name", "metadata"), "metadata.name")
        f.mapping(f.required(doc, "spec", ""), "spec")
    except ValidationError as exc:
        raise exc.at(source) from None
    return Obj(str(kind), name, doc, source)


class OpenSLOSet:
    """All OpenSLO objects from all files, with cross-file reference resolution."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], Obj] = {}

    def add(self, obj: Obj) -> None:
        key = (obj.kind, obj.name)
        if key in self.objects:
            raise ValidationError(
                f"duplicate {obj.kind} {obj.name!r} (also in {self.objects[key].source})",
                source=obj.source,
                field="metadata.name",
            )
        self.objects[key] = obj

    def ref(self, kind: str, name: Any, source: str, path: str) -> Obj:
        ref_name = f.string(name, path)
        found = self.objects.get((kind, ref_name))
        if found is None:
            raise ValidationError(
                f"no {kind} named {ref_name!r} was loaded", source=source, field=path
            )
        return found

    def slos(self) -> list[SLO]:
        out: list[SLO] = []
        for obj in self.objects.values():
            if obj.kind == "SLO":
                try:
                    out.extend(self._slo(obj))
                except ValidationError as exc:
                    raise (exc if exc.source else exc.at(obj.source)) from None
        return out

    # -- SLO ------------------------------------------------------------------------------

    def _slo(self, obj: Obj) -> list[SLO]:
        spec = obj.doc["spec"]
        meta = obj.doc["metadata"]
        f.no_extra(
            spec,
            {
                "description",
                "service",
                "indicator",
                "indicatorRef",
                "timeWindow",
                "budgetingMethod",
                "objectives",
                "alertPolicies",
            },
            "spec",
        )
        service = f.name(f.required(spec, "service", "spec"), "spec.service")
        has_inline = spec.get("indicator") is not None
        has_ref = spec.get("indicatorRef") is not None
        if has_inline == has_ref:
            raise ValidationError(
                "exactly one of indicator or indicatorRef is required", field="spec"
            )
        if has_inline:
            sli_doc = f.mapping(spec["indicator"], "spec.indicator")
            f.no_extra(sli_doc, {"metadata", "spec"}, "spec.indicator")
            sli_spec = f.mapping(
                f.required(sli_doc, "spec", "spec.indicator"), "spec.indicator.spec"
            )
            sli = _sli(sli_spec, "spec.indicator.spec")
        else:
            ref = self.ref("SLI", spec["indicatorRef"], obj.source, "spec.indicatorRef")
            try:
                sli = _sli(ref.doc["spec"], "spec")
            except ValidationError as exc:
                raise exc.at(ref.source) from None
        period = _time_window(spec)
        method_raw = f.req_str(spec, "budgetingMethod", "spec")
        try:
            method = BudgetingMethod(method_raw)
        except ValueError:
            allowed = ", ".join(m.value for m in BudgetingMethod)
            raise ValidationError(
                f"unknown budgeting method {method_raw!r} (expected {allowed})",
                field="spec.budgetingMethod",
            ) from None
        alerting = self._alerting(spec, obj)
        labels = f.labels(meta, "labels", "metadata")
        description = f.opt_str(spec, "description", "spec")
        objectives = f.sequence(f.required(spec, "objectives", "spec"), "spec.objectives")
        out = []
        used: set[str] = set()
        for i, raw in enumerate(objectives):
            path = f"spec.objectives[{i}]"
            item = f.mapping(raw, path)
            f.no_extra(
                item,
                {
                    "displayName",
                    "op",
                    "value",
                    "target",
                    "targetPercent",
                    "timeSliceTarget",
                    "timeSliceWindow",
                    "indicator",
                    "indicatorRef",
                    "compositeWeight",
                },
                path,
            )
            for unsupported in ("op", "value", "indicator", "indicatorRef", "compositeWeight"):
                if item.get(unsupported) is not None:
                    raise ValidationError(
                        "threshold and composite objectives are not supported; "
                        "use a ratioMetric SLI",
                        field=f.join(path, unsupported),
                    )
            objective = _target(item, path)
            slice_target, slice_seconds = _slices(item, method, path)
            display = f.opt_str(item, "displayName", path)
            if len(objectives) == 1:
                slo_name = obj.name
            else:
                suffix = re.sub(r"[^A-Za-z0-9]+", "-", display).strip("-").lower() or str(i)
                slo_name = f"{obj.name}-{suffix}"
            if slo_name in used:
                raise ValidationError(
                    f"duplicate objective name {slo_name!r}", field=f.join(path, "displayName")
                )
            used.add(slo_name)
            out.append(
                SLO(
                    service=service,
                    name=slo_name,
                    objective=objective,
                    period_seconds=period,
                    sli=sli,
                    description=description,
                    labels=labels,
                    alerting=alerting,
                    budgeting=method,
                    time_slice_target=slice_target,
                    time_slice_seconds=slice_seconds,
                    source=obj.source,
                )
            )
        return out

    # -- alerting -------------------------------------------------------------------------

    def _alerting(self, spec: dict[str, Any], obj: Obj) -> Alerting | None:
        if spec.get("alertPolicies") is None:
            return None
        policies = f.sequence(spec["alertPolicies"], "spec.alertPolicies", non_empty=False)
        if not policies:
            return None
        name = ""
        labels: dict[str, str] = {}
        annotations: dict[str, str] = {}
        page = ticket = False
        for i, raw in enumerate(policies):
            path = f"spec.alertPolicies[{i}]"
            policy = self._policy(raw, obj.source, path)
            pname, plabels, pannotations, ppage, pticket = policy
            name = name or pname
            labels.update(plabels)
            annotations.update(pannotations)
            page = page or ppage
            ticket = ticket or pticket
        return Alerting(
            name=name,
            labels=tuple(sorted(labels.items())),
            annotations=tuple(sorted(annotations.items())),
            page=AlertSpec(disabled=not page),
            ticket=AlertSpec(disabled=not ticket),
        )

    def _policy(
        self, raw: Any, source: str, path: str
    ) -> tuple[str, dict[str, str], dict[str, str], bool, bool]:
        if isinstance(raw, str):
            ref = self.ref("AlertPolicy", raw, source, path)
            doc, psource, ppath = ref.doc, ref.source, ""
        else:
            item = f.mapping(raw, path)
            if item.get("alertPolicyRef") is not None:
                f.no_extra(item, {"alertPolicyRef"}, path)
                ref = self.ref(
                    "AlertPolicy", item["alertPolicyRef"], source, f.join(path, "alertPolicyRef")
                )
                doc, psource, ppath = ref.doc, ref.source, ""
            else:
                if item.get("kind") != "AlertPolicy":
                    raise ValidationError("expected kind AlertPolicy", field=f.join(path, "kind"))
                doc, psource, ppath = item, source, path
        try:
            meta = f.mapping(f.required(doc, "metadata", ppath), f.join(ppath, "metadata"))
            pname = f.name(
                f.required(meta, "name", f.join(ppath, "metadata")), f.join(ppath, "metadata.name")
            )
            spec_path = f.join(ppath, "spec")
            spec = f.mapping(f.required(doc, "spec", ppath), spec_path)
            f.no_extra(
                spec,
                {
                    "description",
                    "alertWhenNoData",
                    "alertWhenResolved",
                    "alertWhenBreaching",
                    "conditions",
                    "notificationTargets",
                },
                spec_path,
            )
            for flag in ("alertWhenNoData", "alertWhenResolved", "alertWhenBreaching"):
                f.boolean(spec, flag, spec_path, False)
            annotations: dict[str, str] = {}
            description = f.opt_str(spec, "description", spec_path)
            if description:
                annotations["policy_description"] = description
            targets = []
            for j, traw in enumerate(
                f.sequence(
                    spec.get("notificationTargets") or [],
                    f.join(spec_path, "notificationTargets"),
                    non_empty=False,
                )
            ):
                tpath = f"{spec_path}.notificationTargets[{j}]"
                titem = f.mapping(traw, tpath)
                if titem.get("targetRef") is not None:
                    targets.append(
                        self.ref(
                            "AlertNotificationTarget",
                            titem["targetRef"],
                            psource,
                            f.join(tpath, "targetRef"),
                        ).name
                    )
                else:
                    tmeta = f.mapping(
                        f.required(titem, "metadata", tpath), f.join(tpath, "metadata")
                    )
                    targets.append(
                        f.name(
                            f.required(tmeta, "name", f.join(tpath, "metadata")),
                            f.join(tpath, "metadata.name"),
                        )
                    )
            if targets:
                annotations["notification_targets"] = ",".join(targets)
            page = ticket = False
            conditions = f.sequence(
                f.required(spec, "conditions", spec_path), f.join(spec_path, "conditions")
            )
            for k, craw in enumerate(conditions):
                cpath = f"{spec_path}.conditions[{k}]"
                severity = self._condition(craw, psource, cpath)
                if severity.lower() in PAGE_SEVERITIES:
                    page = True
                else:
                    ticket = True
            alert_name = "".join(w[:1].upper() + w[1:] for w in re.findall(r"[A-Za-z0-9]+", pname))
            if alert_name[:1].isdigit():
                alert_name = "SLO" + alert_name
            labels = dict(f.labels(meta, "labels", f.join(ppath, "metadata")))
        except ValidationError as exc:
            raise (exc.at(psource) if psource != source else exc) from None
        return alert_name, labels, annotations, page, ticket

    def _condition(self, raw: Any, source: str, path: str) -> str:
        item = f.mapping(raw, path)
        if item.get("conditionRef") is not None:
            ref = self.ref(
                "AlertCondition", item["conditionRef"], source, f.join(path, "conditionRef")
            )
            doc, cpath = ref.doc, ""
            try:
                return _condition_spec(doc, cpath)
            except ValidationError as exc:
                raise exc.at(ref.source) from None
        if item.get("kind") != "AlertCondition":
            raise ValidationError("expected conditionRef or an inline AlertCondition", field=path)
        return _condition_spec(item, path)


def _condition_spec(doc: dict[str, Any], path: str) -> str:
    spec_path = f.join(path, "spec")
    spec = f.mapping(f.required(doc, "spec", path), spec_path)
    f.no_extra(spec, {"description", "severity", "condition"}, spec_path)
    severity = f.req_str(spec, "severity", spec_path)
    cond_path = f.join(spec_path, "condition")
    cond = f.mapping(f.required(spec, "condition", spec_path), cond_path)
    f.no_extra(cond, {"kind", "op", "threshold", "lookbackWindow", "alertAfter"}, cond_path)
    if f.req_str(cond, "kind", cond_path) != "burnrate":
        raise ValidationError("only kind 'burnrate' is supported", field=f.join(cond_path, "kind"))
    op = f.req_str(cond, "op", cond_path)
    if op not in {"gt", "gte", "lt", "lte"}:
        raise ValidationError(
            f"invalid op {op!r} (gt, gte, lt, lte)", field=f.join(cond_path, "op")
        )
    f.number(
        f.required(cond, "threshold", cond_path), f.join(cond_path, "threshold"), low=0, high=1e9
    )
    parse_duration(
        f.required(cond, "lookbackWindow", cond_path), field=f.join(cond_path, "lookbackWindow")
    )
    if cond.get("alertAfter") is not None:
        parse_duration(cond["alertAfter"], field=f.join(cond_path, "alertAfter"))
    return severity


def _time_window(spec: dict[str, Any]) -> float:
    windows = f.sequence(f.required(spec, "timeWindow", "spec"), "spec.timeWindow")
    if len(windows) != 1:
        raise ValidationError("exactly one time window is supported", field="spec.timeWindow")
    win = f.mapping(windows[0], "spec.timeWindow[0]")
    f.no_extra(win, {"duration", "isRolling", "calendar"}, "spec.timeWindow[0]")
    if (
        not f.boolean(win, "isRolling", "spec.timeWindow[0]", False)
        or win.get("calendar") is not None
    ):
        raise ValidationError(
            "only rolling windows are supported (set isRolling: true)",
            field="spec.timeWindow[0].isRolling",
        )
    return parse_duration(
        f.required(win, "duration", "spec.timeWindow[0]"), field="spec.timeWindow[0].duration"
    )


def _target(item: dict[str, Any], path: str) -> float:
    has_target = item.get("target") is not None
    has_pct = item.get("targetPercent") is not None
    if has_target == has_pct:
        raise ValidationError("exactly one of target or targetPercent is required", field=path)
    if has_target:
        where = f.join(path, "target")
        percent = 100.0 * f.number(item["target"], where, low=0, high=1)
        return f.objective_percent(percent, where, item["target"])
    where = f.join(path, "targetPercent")
    percent = f.number(item["targetPercent"], where, low=0, high=100)
    return f.objective_percent(percent, where, item["targetPercent"])


def _slices(
    item: dict[str, Any], method: BudgetingMethod, path: str
) -> tuple[float | None, float | None]:
    if method is BudgetingMethod.OCCURRENCES:
        for key in ("timeSliceTarget", "timeSliceWindow"):
            if item.get(key) is not None:
                raise ValidationError(
                    "only valid with Timeslices or RatioTimeslices budgeting",
                    field=f.join(path, key),
                )
        return None, None
    window = parse_duration(
        f.required(item, "timeSliceWindow", path), field=f.join(path, "timeSliceWindow")
    )
    if window < 60 or window % 60:
        raise ValidationError(
            "must be a whole number of minutes", field=f.join(path, "timeSliceWindow")
        )
    if method is BudgetingMethod.TIMESLICES:
        target = f.number(
            f.required(item, "timeSliceTarget", path),
            f.join(path, "timeSliceTarget"),
            low=0,
            high=1,
            high_open=False,
        )
        return target, window
    if item.get("timeSliceTarget") is not None:
        raise ValidationError(
            "only valid with Timeslices budgeting", field=f.join(path, "timeSliceTarget")
        )
    return None, window


def _metric_query(raw: Any, path: str, kind: Kind) -> Windowed:
    item = f.mapping(raw, path)
    f.no_extra(item, {"metricSource"}, path)
    src_path = f.join(path, "metricSource")
    src = f.mapping(f.required(item, "metricSource", path), src_path)
    f.no_extra(src, {"metricSourceRef", "type", "spec"}, src_path)
    kind_name = f.opt_str(src, "type", src_path, "Prometheus")
    if kind_name.lower() != "prometheus":
        raise ValidationError(
            f"unsupported metric source {kind_name!r} (only Prometheus)",
            field=f.join(src_path, "type"),
        )
    spec = f.mapping(f.required(src, "spec", src_path), f.join(src_path, "spec"))
    query = f.req_str(spec, "query", f.join(src_path, "spec"))
    return window_query(query, kind, f.join(src_path, "spec.query"))


def _same_grouping(part: Windowed, total: Windowed, path: str, name: str) -> None:
    """good/bad and total must keep the same labels, or their ratio matches no series."""
    if part.grouping is None or total.grouping is None:
        return  # a {{.window}} query: the user's own template
    if part.grouping.key != total.grouping.key:
        raise ValidationError(
            f"the {name} query groups by {part.grouping.describe()} but the total query by "
            f"{total.grouping.describe()}: their ratio would match no series",
            field=f.join(path, f"{name}.metricSource.spec.query"),
        )


def _sli(spec: Any, path: str) -> EventsSLI | RawSLI:
    sli = f.mapping(spec, path)
    f.no_extra(sli, {"description", "thresholdMetric", "ratioMetric"}, path)
    if sli.get("thresholdMetric") is not None:
        raise ValidationError(
            "thresholdMetric SLIs are not supported; use ratioMetric",
            field=f.join(path, "thresholdMetric"),
        )
    rpath = f.join(path, "ratioMetric")
    ratio = f.mapping(f.required(sli, "ratioMetric", path), rpath)
    f.no_extra(ratio, {"counter", "good", "bad", "total", "raw", "rawType"}, rpath)
    counter = f.boolean(ratio, "counter", rpath, True)
    if ratio.get("raw") is not None:
        for other in ("good", "bad", "total"):
            if ratio.get(other) is not None:
                raise ValidationError(
                    "raw cannot be combined with good, bad or total", field=f.join(rpath, other)
                )
        raw_type = f.req_str(ratio, "rawType", rpath)
        if raw_type not in {"success", "failure"}:
            raise ValidationError(
                f"expected success or failure, got {raw_type!r}", field=f.join(rpath, "rawType")
            )
        query = _metric_query(ratio["raw"], f.join(rpath, "raw"), Kind.RATIO).template
        if raw_type == "success":
            query = f"1 - ({query})"
        return RawSLI(query)
    kind = Kind.COUNTER if counter else Kind.GAUGE
    total = _metric_query(f.required(ratio, "total", rpath), f.join(rpath, "total"), kind)
    has_good = ratio.get("good") is not None
    has_bad = ratio.get("bad") is not None
    if has_good == has_bad:
        raise ValidationError("exactly one of good or bad is required with total", field=rpath)
    name = "bad" if has_bad else "good"
    part = _metric_query(ratio[name], f.join(rpath, name), kind)
    _same_grouping(part, total, rpath, name)
    if has_bad:
        return EventsSLI(part.template, total.template)
    return EventsSLI(f"({total.template}) - ({part.template})", total.template)
