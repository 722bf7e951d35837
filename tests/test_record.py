"""Every frozen record of the package (sre_tools/record.py) behaves as the frozen dataclass it
replaced: fields set by ``__init__``, equality and hash over the fields, repr, replace, copy,
pickle, read-only attributes."""

from __future__ import annotations

import copy
import importlib
import inspect
import pickle
import pkgutil

import pytest

import sre_tools
from sre_tools.record import Record


def _all_records() -> list[type[Record]]:
    for mod in pkgutil.walk_packages(sre_tools.__path__, "sre_tools."):
        if mod.name.startswith(("sre_tools.health", "sre_tools.diag", "sre_tools.gpu")):
            importlib.import_module(mod.name)
    seen: list[type[Record]] = []
    todo = list(Record.__subclasses__())
    while todo:
        cls = todo.pop()
        seen.append(cls)
        todo.extend(cls.__subclasses__())
    return sorted(seen, key=lambda c: f"{c.__module__}.{c.__qualname__}")


RECORDS = _all_records()


def _build(cls: type[Record], tag: str = "") -> tuple[Record, dict[str, object]]:
    """An instance with a distinct value in every field (required or not)."""
    params = inspect.signature(cls).parameters
    args = {name: f"<{name}{tag}>" for name in params}
    return cls(**args), args


def test_the_health_model_is_found() -> None:
    names = {c.__name__ for c in RECORDS}
    assert {"GpuRef", "Finding", "HealthReport", "XidEvent", "Policy", "KernelLog"} <= names


@pytest.mark.parametrize("cls", RECORDS, ids=lambda c: c.__qualname__)
def test_fields_are_the_slots_the_annotations_and_init(cls: type[Record]) -> None:
    params = list(inspect.signature(cls).parameters)
    annotations = [k for k in inspect.get_annotations(cls) if k != "__slots__"]
    assert sorted(cls.__slots__) == sorted(params) == sorted(annotations)
    assert list(cls.__slots__) == sorted(cls.__slots__)


@pytest.mark.parametrize("cls", RECORDS, ids=lambda c: c.__qualname__)
def test_record_behaves_as_a_frozen_dataclass(cls: type[Record]) -> None:
    rec, args = _build(cls)
    for name, value in args.items():
        assert getattr(rec, name) == value  # every field set by __init__
        assert f"{name}={value!r}" in repr(rec)
    twin, _ = _build(cls)
    assert rec == twin and hash(rec) == hash(twin) and rec is not twin
    assert rec != _build(cls, "'")[0]
    assert rec != tuple(args.values())  # never equal to another type
    for name in args:
        changed = rec.replace(**{name: "other"})
        assert getattr(changed, name) == "other" and changed != rec
        assert getattr(rec, name) == args[name]  # the original is untouched
        with pytest.raises(AttributeError):
            setattr(rec, name, "other")
        with pytest.raises(AttributeError):
            delattr(rec, name)
    with pytest.raises(TypeError, match="no field 'nope'"):
        rec.replace(nope=1)
    for other in (copy.copy(rec), copy.deepcopy(rec), pickle.loads(pickle.dumps(rec))):
        assert other == rec and type(other) is cls


def test_defaults_and_factories_are_per_instance() -> None:
    from sre_tools.health.model import Action, Finding, GpuRef, Severity

    a = Finding("c", Severity.OK, "s")
    b = Finding("c", Severity.OK, "s")
    assert a.action is Action.NONE and a.gpu is None and a.evidence == {}
    assert a.evidence is not b.evidence  # as field(default_factory=dict)
    assert GpuRef(3) == GpuRef(3, "", "", None)
    assert {GpuRef(3), GpuRef(3)} == {GpuRef(3)}


def test_a_record_of_a_record_is_refused() -> None:
    """Fields come from the class's own __slots__: a subclass adding fields would silently leave
    the parent's out of equality, hash and replace. Refused when the class is made (a subclass
    adding only behaviour is fine)."""
    from sre_tools.health.model import GpuRef

    with pytest.raises(TypeError, match="cannot add fields to another record"):

        class MigRef(GpuRef):
            __slots__ = ("instance",)

    class Named(GpuRef):
        def name(self) -> str:
            return f"GPU {self.index}"

    assert Named(3).name() == "GPU 3" and Named(3).replace(index=4).index == 4
