"""Reading untrusted input: size caps, and YAML and JSON with bounded depth and alias expansion.

Every file a user or a peer supplies (SLO specs, alert windows, remediation and MIG configs,
remediation events and health reports, CSV imports, kernel logs) is read through
:func:`read_capped` and parsed through :func:`load_yaml_documents`, :func:`load_yaml` or
:func:`load_json`, so the limits below hold everywhere and are documented once:

- a file, standard input or a gzip file's *unpacked* content larger than its cap is refused
  (``/dev/zero`` and a gzip bomb stop at the cap);
- a FIFO is never waited on: one without a writer reads as empty, one with a writer (process
  substitution, ``<(cat file)``) is read until the writer closes it; a directory is refused;
- YAML and JSON nested deeper than :data:`MAX_DEPTH` are refused;
- YAML aliases may expand a document to at most :data:`MAX_YAML_NODES` nodes (a "billion
  laughs" document is refused before it is built) and may not refer to a node that contains
  them (a self-referencing alias);
- YAML with a key twice in one mapping is refused, naming the key and its line (keys a merge
  ``<<`` brings in may be overridden, as YAML intends); JSON with a key twice in one object,
  or with ``NaN`` / ``Infinity``, is refused;
- an integer of more than 4300 digits (Python's limit, ``sys.get_int_max_str_digits()``) in
  YAML or JSON is refused, naming its line, and so is a YAML scalar that is no valid value of
  its type (a date such as ``2026-13-45``).

Every refusal is a :class:`~sre_tools.exceptions.ValidationError` naming the source.
"""

from __future__ import annotations

import errno
import functools
import json
import math
import os
import re
import stat
import sys

from sre_tools.exceptions import ValidationError

TYPE_CHECKING = False  # not typing's: importing typing costs `sre health` ~5 ms (mypy reads this)
if TYPE_CHECKING:
    from typing import Any, BinaryIO, Protocol

    import yaml

# PyYAML is imported where YAML is read, not here: `sre health` reads recordings (JSON) through
# this module on every run, and its start-up stays free of PyYAML (benchmarks/bench_health.py).

MiB = 1024 * 1024

# Size caps per kind of input (bytes, after gzip is unpacked).
MAX_SPEC_BYTES = 4 * MiB  # SLO specs, alert windows, remediation and MIG configs
MAX_EVENT_BYTES = 64 * 1024  # one remediation event (a Salt event body, a file, stdin)
MAX_REPORT_BYTES = 16 * MiB  # one health report as JSON
MAX_CSV_BYTES = 64 * MiB  # incident and SLI count imports
MAX_KERNEL_LOG_BYTES = 256 * MiB  # dmesg / journal text for ``sre xid``
MAX_RECORDING_BYTES = 64 * MiB  # NVML recordings
MAX_INPUT_BYTES = 256 * MiB  # any other file a command reads

MAX_DEPTH = 64  # nested mappings and lists, YAML and JSON
MAX_YAML_NODES = 200_000  # nodes of one YAML document once its aliases are expanded


def _size(limit: int) -> str:
    if limit % MiB == 0:
        return f"{limit // MiB} MiB"
    if limit % 1024 == 0:
        return f"{limit // 1024} KiB"
    return f"{limit} bytes"


def too_large(limit: int, source: str, what: str = "input") -> ValidationError:
    return ValidationError(f"{what} larger than {_size(limit)}, the size limit", source=source)


if TYPE_CHECKING:

    class _Readable(Protocol):
        def read(self, size: int = -1, /) -> bytes: ...


def _read_stream(stream: _Readable, limit: int, source: str, what: str) -> bytes:
    data = stream.read(limit + 1)
    if len(data) > limit:
        raise too_large(limit, source, what)
    return data


def _open_binary(file: str) -> BinaryIO:
    """``file`` opened for reading without waiting for a FIFO's writer: opened with
    ``O_NONBLOCK`` (a FIFO nobody writes to would hang a plain open forever), which is then
    cleared, so that a pipe with a writer (``<(cat file)``) is read to its end and a FIFO without
    one reads as empty. A directory is refused here (Linux opens one for reading)."""
    import fcntl

    fd = os.open(file, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), file)
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_capped(file: str, limit: int, *, what: str = "file") -> tuple[bytes, str]:
    """Return ``(bytes, source name)`` of a path or ``-`` (stdin), at most ``limit`` bytes.

    A name ending in ``.gz`` is unpacked, and the cap applies to the unpacked bytes. An
    unreadable file, a directory, a corrupt gzip file or one larger than the cap is a validation
    error. A FIFO is read until its writer closes it; one without a writer reads as empty (never
    a hang), as does a pipe from process substitution once its command ends.
    """
    if file == "-":
        source = "<stdin>"
        buffer = getattr(sys.stdin, "buffer", None)
        if buffer is None:  # a text-only stdin (an io.StringIO in tests)
            text = sys.stdin.read(limit + 1)
            data = text.encode("utf-8", "surrogateescape")
            if len(text) > limit or len(data) > limit:
                raise too_large(limit, source, "standard input")
            return data, source
        return _read_stream(buffer, limit, source, "standard input"), source
    source = file
    try:
        if file.endswith(".gz"):
            import gzip
            import zlib

            try:
                with _open_binary(file) as raw, gzip.open(raw, "rb") as fh:
                    return _read_stream(fh, limit, source, "unpacked gzip content"), source
            except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
                raise ValidationError(
                    f"not a valid gzip file: {exc or 'truncated'}", source=source
                ) from None
        with _open_binary(file) as fh:
            return _read_stream(fh, limit, source, what), source
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ValidationError(f"cannot read file: {reason}", source=source) from None


def decode_utf8(data: bytes, source: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValidationError(
            f"not a UTF-8 text file (byte {exc.start} is not UTF-8)", source=source
        ) from None


def read_text_capped(file: str, limit: int, *, what: str = "file") -> tuple[str, str]:
    """:func:`read_capped`, decoded as UTF-8: ``(text, source name)``."""
    data, source = read_capped(file, limit, what=what)
    return decode_utf8(data, source), source


# --- YAML ---------------------------------------------------------------------------------------

_BRACKETS = re.compile(r"[\[\]{}]")


@functools.cache
def _c_loader() -> Any:
    """libyaml's loader when PyYAML was built with it, else None."""
    import yaml

    return getattr(yaml, "CSafeLoader", None)


def _number_reason(exc: ValueError) -> str | None:
    """The reason for Python's refusal of an integer of more than ``sys.get_int_max_str_digits()``
    digits (a denial-of-service guard: converting one takes quadratic time), else None."""
    if "Exceeds the limit" not in str(exc):
        return None
    return f"a number with more than {sys.get_int_max_str_digits()} digits"


_MERGE_TAG = "tag:yaml.org,2002:merge"
_VALUE_TAG = "tag:yaml.org,2002:value"


@functools.cache
def _loader_class() -> Any:
    """libyaml's safe loader (else PyYAML's own), refusing a key given twice in one mapping and
    turning a scalar that cannot be constructed (an integer past Python's digit limit, a date
    such as 2026-13-45) into a marked YAML error instead of a bare ``ValueError``."""
    import yaml
    from yaml.constructor import ConstructorError

    base = _c_loader() or yaml.SafeLoader

    class Loader(base):  # type: ignore[misc, valid-type]
        def __init__(self, stream: str) -> None:
            super().__init__(stream)
            # Mappings already checked, by id (kept alive here, so an id is never reused):
            # flattening merges keys into a mapping, which must not then read as duplicates.
            self.checked_mappings: dict[int, yaml.MappingNode] = {}

        def flatten_mapping(self, node: yaml.MappingNode) -> None:
            if id(node) not in self.checked_mappings:
                self.checked_mappings[id(node)] = node
                self.refuse_duplicate_keys(node)
            super().flatten_mapping(node)

        def refuse_duplicate_keys(self, node: yaml.MappingNode) -> None:
            """A key given twice in one mapping (``<<`` too) is refused: whichever came last
            would silently win. Keys a merge brings in may be overridden, as YAML intends."""
            from sre_tools.text import printable

            seen: dict[Any, yaml.Node] = {}
            for key_node, _value in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    continue  # a list or mapping as a key is refused later (unhashable)
                if key_node.tag in (_MERGE_TAG, _VALUE_TAG):
                    key: Any = (key_node.tag,)
                    shown = "<<" if key_node.tag == _MERGE_TAG else "="
                else:
                    key = self.construct_object(key_node)
                    shown = repr(key)
                try:
                    first = seen.setdefault(key, key_node)
                except TypeError:
                    continue
                if first is not key_node:
                    if len(shown) > 80:
                        shown = shown[:77] + "..."
                    raise ConstructorError(
                        None,
                        None,
                        f"duplicate key {printable(shown)} (first at line "
                        f"{first.start_mark.line + 1})",
                        key_node.start_mark,
                    )

        def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
            try:
                return super().construct_object(node, deep)
            except ValueError as exc:
                kind = str(node.tag).rsplit(":", 1)[-1]
                reason = _number_reason(exc) or f"not a valid {kind} ({exc})"
                raise ConstructorError(None, None, reason, node.start_mark) from None

    return Loader


def _flow_too_deep(text: str) -> bool:
    """Whether flow brackets may nest deeper than :data:`MAX_DEPTH` (quoted ones count too)."""
    depth = 0
    for match in _BRACKETS.finditer(text):
        depth += 1 if match.group() in "[{" else -1
        if depth > MAX_DEPTH:
            return True
    return False


def _check_event_depth(text: str, source: str) -> None:
    """Refuse nesting deeper than :data:`MAX_DEPTH` from libyaml's event stream, which (unlike its
    composer, recursive in C) does not recurse, before anything is composed."""
    import yaml

    loader = _c_loader()(text)
    depth = 0
    try:
        while loader.check_event():
            event = loader.get_event()
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    mark = event.start_mark
                    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
                    raise ValidationError(
                        f"invalid YAML: nested too deeply (more than {MAX_DEPTH} levels){where}",
                        source=source,
                    )
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
    finally:
        loader.dispose()


def yaml_reason(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    if mark is not None:
        return f"{problem} at line {mark.line + 1}, column {mark.column + 1}"
    return str(problem)


class _Budget:
    """Walks a composed node graph once, sharing the work for aliased nodes, and refuses a
    graph that is too deep, expands to too many nodes, or contains a cycle."""

    def __init__(self, source: str):
        self.source = source
        self.sizes: dict[int, tuple[int, int]] = {}  # id(node) -> (expanded nodes, height)
        self.path: set[int] = set()

    def fail(self, reason: str, node: yaml.Node) -> ValidationError:
        mark = node.start_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        return ValidationError(f"invalid YAML: {reason}{where}", source=self.source)

    def measure(self, node: yaml.Node, depth: int) -> tuple[int, int]:
        import yaml

        if isinstance(node, yaml.ScalarNode):
            # Height counts container levels: a mapping of scalars is as deep as an empty list.
            return 1, -1
        key = id(node)
        known = self.sizes.get(key)
        if known is None:
            if key in self.path:
                raise self.fail("an alias refers to a node that contains it", node)
            if depth > MAX_DEPTH:
                raise self.fail(f"nested too deeply (more than {MAX_DEPTH} levels)", node)
            self.path.add(key)
            if isinstance(node, yaml.MappingNode):
                children = [n for pair in node.value for n in pair]
            else:
                children = list(node.value)
            total, height = 1, 0
            for child in children:
                size, child_height = self.measure(child, depth + 1)
                total += size
                height = max(height, child_height + 1)
                if total > MAX_YAML_NODES:
                    raise self.fail(f"aliases expand to more than {MAX_YAML_NODES} nodes", node)
            self.path.discard(key)
            known = self.sizes[key] = (total, height)
        if depth + known[1] > MAX_DEPTH:
            raise self.fail(f"nested too deeply (more than {MAX_DEPTH} levels)", node)
        return known


def load_yaml_documents(text: str, source: str) -> list[Any]:
    """Every document of a YAML text (empty ones as ``None``), within the limits above."""
    import yaml

    try:
        if _c_loader() is not None and _flow_too_deep(text):
            _check_event_depth(text, source)
    except yaml.YAMLError as exc:
        reason = yaml_reason(exc)
        if "nesting depth" in reason:  # libyaml's own limit, met while scanning ahead
            reason = f"nested too deeply (more than {MAX_DEPTH} levels): {reason}"
        raise ValidationError(f"invalid YAML: {reason}", source=source) from None
    # libyaml's loader is about 8x faster; PyYAML's own stops deep input with a RecursionError.
    loader = _loader_class()(text)
    try:
        docs = []
        while loader.check_node():
            node = loader.get_node()
            if node is not None:
                _Budget(source).measure(node, 1)
            docs.append(loader.construct_document(node))
        return docs
    except yaml.YAMLError as exc:
        raise ValidationError(f"invalid YAML: {yaml_reason(exc)}", source=source) from None
    except RecursionError:
        raise ValidationError(
            f"invalid YAML: nested too deeply (more than {MAX_DEPTH} levels)", source=source
        ) from None
    finally:
        loader.dispose()


def load_yaml(text: str, source: str) -> Any:
    """The one document of a YAML text (``None`` when empty), within the limits above."""
    docs = load_yaml_documents(text, source)
    if len(docs) > 1:
        raise ValidationError("invalid YAML: expected a single document", source=source)
    return docs[0] if docs else None


# --- JSON ---------------------------------------------------------------------------------------


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValidationError("duplicate key", field=key)
        out[key] = value
    return out


def _constant(name: str) -> Any:
    raise ValidationError(f"not valid JSON: {name} is not a number")


def _float(text: str) -> float:
    """A JSON number with a fraction or exponent; ``1e999`` would be infinity, refused as the
    literal ``Infinity`` is."""
    value = float(text)
    if value in (math.inf, -math.inf):
        raise ValidationError(f"not valid JSON: {text[:40]} is too large for a number")
    return value


def _check_depth(data: Any, source: str) -> None:
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict | list):
            if depth > MAX_DEPTH:
                reason = f"nested too deeply (more than {MAX_DEPTH} levels)"
                raise ValidationError(f"not valid JSON: {reason}", source=source)
            children = value.values() if isinstance(value, dict) else value
            stack.extend((child, depth + 1) for child in children)


_JSON_STRING_OR_NUMBER = re.compile(r'"(?:[^"\\]+|\\.)*"|-?(\d+)(\.\d+)?([eE][-+]?\d+)?')


def _long_integer_at(text: str) -> str:
    """`` at line L, column C`` of the first integer past the digit limit outside a string (the
    JSON decoder does not say where), or an empty string."""
    limit = sys.get_int_max_str_digits()
    for match in _JSON_STRING_OR_NUMBER.finditer(text):
        digits, fraction, exponent = match.groups()
        if digits and fraction is None and exponent is None and len(digits) > limit:
            start = match.start()
            line = text.count("\n", 0, start) + 1
            column = start - text.rfind("\n", 0, start)
            return f" at line {line}, column {column}"
    return ""


def load_json(text: str, source: str) -> Any:
    """A JSON text, refusing duplicate keys, ``NaN`` / ``Infinity`` and deep nesting."""
    try:
        data = json.loads(
            text, object_pairs_hook=_pairs, parse_constant=_constant, parse_float=_float
        )
    except json.JSONDecodeError as exc:
        reason = f"{exc.msg} at line {exc.lineno}, column {exc.colno}"
        raise ValidationError(f"not valid JSON: {reason}", source=source) from None
    except RecursionError:
        raise ValidationError(
            f"not valid JSON: nested too deeply (more than {MAX_DEPTH} levels)", source=source
        ) from None
    except ValidationError as exc:
        raise exc.at(source) from None
    except ValueError as exc:  # an integer past Python's digit limit (sys.set_int_max_str_digits)
        number = _number_reason(exc)
        if number is None:
            raise
        where = _long_integer_at(text)
        raise ValidationError(f"not valid JSON: {number}{where}", source=source) from None
    _check_depth(data, source)
    return data
