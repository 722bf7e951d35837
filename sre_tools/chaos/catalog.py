"""The drill catalog shipped in ``sre_tools/data/drills``: one experiment file per drill."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from sre_tools.chaos.model import Experiment, load_experiment
from sre_tools.exceptions import NotFoundError

SUFFIXES = (".yaml", ".yml", ".json")


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
