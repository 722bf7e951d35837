"""The GPU fleet dashboard: health status, XIDs, memory, thermal and power, clocks, links, the
exporter's freshness. Every metric name comes from :mod:`sre_tools.exporter.metric_names`."""

from __future__ import annotations

from sre_tools.dashboards.builder import (
    Dashboard,
    Panel,
    Row,
    Target,
    Variable,
    status_mappings,
    status_thresholds,
    thresholds,
    value_mappings,
)
from sre_tools.exporter import metric_names as m

UID = "sre-gpu-fleet"
NODE = 'instance=~"$instance"'
RATE = "$__rate_interval"
# Legends name the node by `instance` (always set by the scrape) and the GPU by its NVML index.
GPU_LEGEND = "{{instance}} GPU {{gpu}}"


def _check_family(*families: str) -> str:
    return f'{m.LABEL_CHECK}=~"({"|".join(families)})[.].*"'


def _checks_table(title: str, families: tuple[str, ...], description: str) -> Panel:
    return Panel(
        "table",
        title,
        [
            Target(
                f"{m.GPU_HEALTH_CHECK_STATUS}{{{NODE}, {_check_family(*families)}}}",
                instant=True,
            )
        ],
        description=description,
        mappings=status_mappings(),
        thresholds=status_thresholds(),
        custom={"cellOptions": {"type": "color-background"}},
        transformations=[_organize(m.LABEL_CHECK)],
        width=12,
    )


def _organize(*extra: str) -> dict[str, object]:
    """Table columns: the node, the GPU, then ``extra`` labels and the value; the rest hidden."""
    keep = ["instance", m.LABEL_GPU, *extra, "Value"]
    return {
        "id": "organize",
        "options": {
            "excludeByName": {
                "Time": True,
                "__name__": True,
                "job": True,
                m.LABEL_UUID: True,
                m.LABEL_PCI_BUS_ID: True,
            },
            "indexByName": {name: i for i, name in enumerate(keep)},
            "renameByName": {"Value": "status" if "check" in extra else "value"},
        },
    }


def dashboard() -> Dashboard:
    health = Row(
        "Health",
        [
            Panel(
                "stat",
                "Node GPU health",
                [Target(f"{m.GPU_HEALTH_STATUS}{{{NODE}}}", "{{instance}}")],
                description="Worst finding of the health engine per node (gpu_health_status).",
                mappings=status_mappings(),
                thresholds=status_thresholds(),
                width=8,
                height=6,
            ),
            Panel(
                "table",
                "Required action",
                [Target(f"{m.GPU_HEALTH_REQUIRED_ACTION}{{{NODE}}} == 1", instant=True)],
                description="The most disruptive action a node's warn/crit findings ask for.",
                transformations=[_organize(m.LABEL_ACTION)],
                width=8,
                height=6,
            ),
            Panel(
                "stat",
                "GPUs seen / expected",
                [
                    Target(f"{m.GPU_COUNT}{{{NODE}}}", "{{instance}} seen"),
                    Target(f"{m.GPU_EXPECTED_COUNT}{{{NODE}}}", "{{instance}} expected"),
                ],
                description="NVML's GPU count against the health policy's expected_gpus.",
                thresholds=thresholds(("blue", None)),
                width=8,
                height=6,
            ),
            Panel(
                "table",
                "Health checks not OK",
                [
                    Target(
                        f"{m.GPU_HEALTH_CHECK_STATUS}{{{NODE}}} > {m.STATUS_OK}",
                        instant=True,
                    )
                ],
                description="Every check whose worst finding is unknown, warn or crit, with the "
                "action it asks for (MIG instances show as their parent GPU's index).",
                mappings=status_mappings(),
                thresholds=status_thresholds(),
                custom={"cellOptions": {"type": "color-background"}},
                transformations=[_organize(m.LABEL_CHECK, m.LABEL_ACTION)],
                width=24,
            ),
            Panel(
                "timeseries",
                "GPU up",
                [Target(f"{m.GPU_UP}{{{NODE}}}", GPU_LEGEND)],
                description="1 while the GPU answers NVML, 0 once it is lost.",
                minimum=0,
                maximum=1,
                width=24,
                height=6,
            ),
        ],
    )
    xid = Row(
        "XID events",
        [
            Panel(
                "timeseries",
                "XID rate by code and node",
                [
                    Target(
                        f"sum by (instance, {m.LABEL_XID}) "
                        f"(rate({m.GPU_XID_EVENTS}{{{NODE}}}[{RATE}]))",
                        "{{instance}} XID {{xid}}",
                    )
                ],
                description="XID events per second; what a code means: sre xid show CODE.",
                unit="cps",
                width=12,
            ),
            Panel(
                "table",
                "XID events by GPU",
                [Target(f"{m.GPU_XID_EVENTS}{{{NODE}}}", instant=True)],
                description="Events the exporter has counted, per GPU and code.",
                transformations=[_organize(m.LABEL_XID)],
                width=12,
            ),
        ],
    )
    memory = Row(
        "Memory: ECC and row remapping",
        [
            Panel(
                "timeseries",
                "ECC errors since driver load",
                [
                    Target(
                        f'{m.GPU_ECC_ERRORS}{{{NODE}, {m.LABEL_COUNTER}="volatile"}}',
                        "{{instance}} GPU {{gpu}} {{error_type}}",
                    )
                ],
                description="Volatile ECC counters; any uncorrected error pages "
                "(GpuUncorrectedEccErrors).",
                width=12,
            ),
            Panel(
                "timeseries",
                "Remapped rows",
                [
                    Target(
                        f"{m.GPU_REMAPPED_ROWS}{{{NODE}}}",
                        "{{instance}} GPU {{gpu}} {{cause}}",
                    )
                ],
                description="HBM rows remapped, by the error that caused it.",
                width=6,
            ),
            Panel(
                "table",
                "Row remap pending or failed",
                [
                    Target(f"{m.GPU_ROW_REMAP_PENDING}{{{NODE}}} == 1", instant=True),
                    Target(f"{m.GPU_ROW_REMAP_FAILURE}{{{NODE}}} == 1", instant=True),
                ],
                description="A: remap waiting for a GPU reset. B: no spare rows left (RMA).",
                transformations=[{"id": "merge", "options": {}}, _organize()],
                width=6,
            ),
            _checks_table(
                "Memory checks",
                ("ecc", "remap", "sram", "repair", "retired_pages", "memory"),
                "Health checks of the memory family per GPU.",
            ),
        ],
    )
    thermal = Row(
        "Thermal, power and clocks",
        [
            Panel(
                "timeseries",
                "Thermal margin to slowdown",
                [
                    Target(
                        f'{m.GPU_TEMPERATURE_THRESHOLD}{{{NODE}, {m.LABEL_THRESHOLD}="slowdown"}}'
                        f" - ignoring({m.LABEL_THRESHOLD}) {m.GPU_TEMPERATURE}{{{NODE}}}",
                        GPU_LEGEND,
                    )
                ],
                description="Degrees below the hardware slowdown threshold; under 5 warns.",
                unit="celsius",
                thresholds=thresholds(("red", None), ("orange", 5), ("green", 10)),
                custom={"thresholdsStyle": {"mode": "line"}},
                width=12,
            ),
            Panel(
                "timeseries",
                "HBM temperature",
                [Target(f"{m.GPU_MEMORY_TEMPERATURE}{{{NODE}}}", GPU_LEGEND)],
                unit="celsius",
                width=12,
            ),
            Panel(
                "timeseries",
                "Power draw",
                [Target(f"{m.GPU_POWER_USAGE}{{{NODE}}}", GPU_LEGEND)],
                unit="watt",
                width=12,
            ),
            Panel(
                "timeseries",
                "Power draw against the limit",
                [
                    Target(
                        f"{m.GPU_POWER_USAGE}{{{NODE}}} / {m.GPU_POWER_LIMIT}{{{NODE}}}",
                        GPU_LEGEND,
                    )
                ],
                unit="percentunit",
                minimum=0,
                width=12,
            ),
            Panel(
                "timeseries",
                "SM clock",
                [Target(f'{m.GPU_CLOCK}{{{NODE}, {m.LABEL_CLOCK}="sm"}}', GPU_LEGEND)],
                unit="hertz",
                width=12,
            ),
            Panel(
                "timeseries",
                "Throttle reasons",
                [
                    Target(
                        f"rate({m.GPU_CLOCK_THROTTLE}{{{NODE}}}[{RATE}])",
                        "{{instance}} GPU {{gpu}} {{reason}}",
                    )
                ],
                description="Fraction of time clocks were held below target, by reason.",
                unit="percentunit",
                width=12,
            ),
        ],
    )
    links = Row(
        "PCIe, NVLink, fabric and InfiniBand",
        [
            Panel(
                "timeseries",
                "PCIe replays",
                [Target(f"rate({m.GPU_PCIE_REPLAYS}{{{NODE}}}[{RATE}])", GPU_LEGEND)],
                description="Link-level retransmissions per second; sustained >1/s warns.",
                unit="cps",
                width=12,
            ),
            Panel(
                "table",
                "PCIe links below their maximum width",
                [
                    Target(
                        f"{m.GPU_PCIE_LINK_WIDTH}{{{NODE}}}"
                        f" < {m.GPU_PCIE_LINK_MAX_WIDTH}{{{NODE}}}",
                        instant=True,
                    )
                ],
                description="Current lane count of links that trained narrower than the slot "
                "allows (empty: all at full width).",
                transformations=[_organize()],
                width=12,
            ),
            Panel(
                "timeseries",
                "NVLink errors",
                [
                    Target(
                        f"rate({m.GPU_NVLINK_ERRORS}{{{NODE}}}[{RATE}])",
                        "{{instance}} GPU {{gpu}} {{error}}",
                    )
                ],
                unit="cps",
                width=8,
            ),
            Panel(
                "timeseries",
                "NVLinks active",
                [Target(f"{m.GPU_NVLINK_LINKS_ACTIVE}{{{NODE}}}", GPU_LEGEND)],
                width=8,
            ),
            Panel(
                "table",
                "NVSwitch fabric state",
                [Target(f"{m.GPU_FABRIC_STATE}{{{NODE}}}", instant=True)],
                mappings=value_mappings(*((k, v, None) for k, v in m.FABRIC_STATES.items())),
                transformations=[_organize()],
                width=8,
            ),
            _checks_table(
                "InfiniBand checks",
                ("ib",),
                "Port state, rate, symbol/link error rates and link flaps as the health engine "
                "judges them (ib.* checks, node-level: no GPU).",
            ),
            Panel(
                "table",
                "MIG instances",
                [Target(f"{m.GPU_MIG_INSTANCE_INFO}{{{NODE}}}", instant=True)],
                description="Each MIG instance with its parent GPU (telemetry is per physical "
                "GPU): the MIG UUID jobs see in CUDA_VISIBLE_DEVICES, GPU and compute instance.",
                transformations=[
                    _organize(
                        m.LABEL_MIG_NAME,
                        m.LABEL_MIG_UUID,
                        m.LABEL_GPU_INSTANCE,
                        m.LABEL_COMPUTE_INSTANCE,
                    )
                ],
                width=12,
            ),
            _checks_table(
                "MIG checks",
                ("mig",),
                "MIG mode changes pending a reset and the layout against the site's mig-parted "
                "configuration, per GPU.",
            ),
        ],
    )
    exporter = Row(
        "Exporter",
        [
            Panel(
                "timeseries",
                "Collection age",
                [
                    Target(
                        f"time() - {m.EXPORTER_LAST_COLLECTION}{{{NODE}}}",
                        "{{instance}}",
                    )
                ],
                description="Seconds since the last collection; over 300 s is stale.",
                unit="s",
                thresholds=thresholds(("green", None), ("red", 300)),
                custom={"thresholdsStyle": {"mode": "line"}},
                width=8,
            ),
            Panel(
                "stat",
                "Exporter scraped",
                [Target(f'up{{job="{m.SCRAPE_JOB}", {NODE}}}', "{{instance}}")],
                mappings=value_mappings((0, "DOWN", "red"), (1, "UP", "green")),
                thresholds=thresholds(("red", None), ("green", 1)),
                width=8,
            ),
            Panel(
                "timeseries",
                "Collection errors",
                [
                    Target(
                        f"sum by (instance, {m.LABEL_REASON}) "
                        f"(rate({m.EXPORTER_COLLECTION_ERRORS}{{{NODE}}}[{RATE}]))",
                        "{{instance}} {{reason}}",
                    )
                ],
                unit="cps",
                width=8,
            ),
        ],
    )
    return Dashboard(
        uid=UID,
        title="GPU fleet",
        description="GPU health and telemetry from sre exporter (sre_tools).",
        rows=[health, xid, memory, thermal, links, exporter],
        variables=[Variable("instance", "Node", f"label_values({m.GPU_HEALTH_STATUS}, instance)")],
    )
