"""The drill catalog shipped in ``sre_tools/data/drills``: one experiment file per drill.

A drill that needs a tool only some nodes have (``dcgm-inject`` needs ``dcgmi``) says so with a
steady-state probe of :func:`sre_tools.chaos.probes.command_available` (tolerance ``true``).
Chaos Toolkit reads that as an ordinary probe (the steady state is not met: nothing runs);
:func:`skip_reason` finds those probes and turns an unmet one into a reason to skip the drill
on that node, which the runner reports as the run status ``skipped`` instead of ``failed``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from sre_tools.chaos.model import Activity, Experiment, load_experiment
from sre_tools.exceptions import NotFoundError, SreError
from sre_tools.transport import Transport

SUFFIXES = (".yaml", ".yml", ".json")
REQUIREMENT_PROVIDER = ("sre_tools.chaos.probes", "command_available")


def catalog_dir() -> Path:
    return Path(str(resources.files("sre_tools") / "data" / "drills"))


def names() -> list[str]:
    return sorted(p.stem for p in catalog_dir().iterdir() if p.suffix in SUFFIXES)


def path_of(name: str) -> Path:
    for suffix in SUFFIXES:
        candidate = catalog_dir() / f"{name}{suffix}"
        if candidate.is_file():
            return candidate
    raise NotFoundError(
        f"no drill named {name!r} in the catalog (see 'sre drill list')", field="NAME"
    )


def resolve(name_or_file: str) -> tuple[str, Experiment]:
    """A catalog name or an experiment file: ``(source, experiment)``."""
    if name_or_file in names():
        path = str(path_of(name_or_file))
    elif Path(name_or_file).suffix in SUFFIXES or "/" in name_or_file:
        path = name_or_file
    else:
        path_of(name_or_file)  # raises: neither a drill nor a file name
        path = name_or_file
    return path, load_experiment(path)


def requirements(experiment: Experiment) -> list[Activity]:
    """The steady-state probes that say what a node must have for the drill to apply."""
    return [
        probe
        for probe in experiment.hypothesis
        if probe.provider.type == "python"
        and (probe.provider.module, probe.provider.func) == REQUIREMENT_PROVIDER
    ]


def skip_reason(
    experiment: Experiment,
    nodes: Sequence[str],
    transport_for: Callable[[str], Transport],
    run_id: str,
    variables: Mapping[str, Any],
) -> str | None:
    """Why the drill does not apply to ``nodes`` (a required command missing on one), or
    ``None``. Runs only the requirement probes; a probe that errors (a timeout, a lost
    connection) raises :class:`SreError`: the run is then an error, not a skip."""
    from sre_tools.chaos.runner import call_activity, substitute
    from sre_tools.chaos.tolerance import within_tolerance

    for probe in requirements(experiment):
        for node in nodes:
            try:
                args = substitute(dict(probe.provider.arguments or {}), variables)
                wanted = args.get("command_name", "?")
                value = call_activity(probe, node, transport_for(node), run_id, variables)
            except SreError:
                raise  # cannot tell whether it applies: an error for the run, never a skip
            except (OSError, ValueError, TypeError) as exc:
                raise SreError(
                    f"{node}: {probe.name}: cannot tell whether it applies: {exc}"
                ) from exc
            assert probe.tolerance is not None
            if not within_tolerance(probe.tolerance, value):
                return (
                    f"{node}: {probe.name}: {wanted!s} is not installed there; "
                    f"drill {experiment.title} does not apply"
                )
    return None
