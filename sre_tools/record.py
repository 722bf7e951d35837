"""Frozen value classes for the modules ``sre health`` imports, without :mod:`dataclasses`.

``import dataclasses`` imports :mod:`inspect` (and with it ast, dis and tokenize), and every
``@dataclass`` compiles its methods at import: together about a quarter of ``sre health``'s own
start-up, which Slurm pays on every node every few minutes (benchmarks/bench_health.py). The
health model's value classes derive from :class:`Record` instead.

A record lists its fields in ``__slots__``, declares their types in the class body, and its
``__init__`` (typed, with the defaults) hands every field to :meth:`Record._init` by keyword.
From the field list it gets what the frozen dataclasses gave: equality and hash over the
fields, a repr, read-only attributes, copying and pickling, and :meth:`Record.replace` (what
``dataclasses.replace`` did: a new record through ``__init__``). Mutable classes on that path
are plain classes. tests/test_record.py checks every record of the package: every field set by
``__init__``, equality, hash, repr, replace, copy and pickle.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not typing's: importing typing costs `sre health` ~5 ms (mypy reads this)
if TYPE_CHECKING:
    from typing import Any, Self


class Record:
    """Base of a frozen record: fields in ``__slots__``, set once by :meth:`_init`."""

    __slots__: tuple[str, ...] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # Every method reads the fields from the class's own __slots__: a record of a record
        # would leave the parent's fields out of equality, hash, repr and replace.
        super().__init_subclass__(**kwargs)
        own = cls.__dict__.get("__slots__", ())
        if own and any(getattr(base, "__slots__", ()) for base in cls.__mro__[1:-2]):
            raise TypeError(f"{cls.__name__}: a record cannot add fields to another record")

    def _init(self, **fields: Any) -> None:
        for name, value in fields.items():
            object.__setattr__(self, name, value)

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, Record)
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"{self.__class__.__qualname__}({fields})"

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"cannot assign to field {name!r} of a frozen {type(self).__name__}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field {name!r} of a frozen {type(self).__name__}")

    def __reduce__(self) -> tuple[Any, ...]:
        # copy, deepcopy and pickle: rebuilt through __init__ by keyword (the slots are frozen)
        return (_rebuild, (self.__class__, dict(zip(self.__slots__, self._values(), strict=True))))

    def replace(self, **changes: Any) -> Self:
        """A copy with ``changes`` (field names), made through ``__init__`` like
        ``dataclasses.replace``; an unknown field name is a TypeError."""
        unknown = set(changes) - set(self.__slots__)
        if unknown:
            raise TypeError(f"{type(self).__name__} has no field {sorted(unknown)[0]!r}")
        fields = {name: getattr(self, name) for name in self.__slots__}
        fields.update(changes)
        return self.__class__(**fields)


def _rebuild(cls: type[Record], fields: dict[str, Any]) -> Record:
    return cls(**fields)
