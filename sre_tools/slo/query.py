"""Window an OpenSLO ``query``: a small, explicit PromQL analysis and rewrite.

OpenSLO files written for other tools carry either a series selector or a whole expression in
``metricSource.spec.query``, never a window. The rules need each query over many windows, so the
query is turned into a template with ``{{.window}}`` (the Sloth form). Three shapes are read:

- a query containing ``{{.window}}``: already a template, used as written;
- a series selector ``metric{label="value", ...}``: wrapped as before (counters
  ``sum(rate(S[w]))``, gauges ``sum(avg_over_time(S[w]))``, raw ratios
  ``avg(avg_over_time(S[w]))``);
- one aggregation over one selector, ``AGG [by|without (labels)] (S [CMP number])`` with AGG one
  of sum, count, min, max, avg:

  - counters: only ``sum`` without a comparison, and the rate moves inside the aggregation,
    ``sum by (l) (rate(S[w]))``. A rate of a sum is wrong (a restarting series makes the sum
    drop), and min/max/avg/count of per-series rates are not event counts;
  - gauges and raw ratios: the expression is averaged over the window with a subquery,
    ``avg_over_time((E)[w:1m])``. A comparison filter (``S == 1``) makes ``sum``/``count``
    empty when no series matches, and the subquery would then skip those minutes instead of
    counting them as 0 (all nodes down would read as no data). So the expression is completed
    with ``or 0 * count <grouping> (S)``; ``min``, ``max`` and ``avg`` of a filtered set have no
    value to complete with and are refused.

Anything else (a fixed range such as ``[5m]``, functions, arithmetic, offsets, nested or other
aggregations) is refused with a one-line message that shows the ``{{.window}}`` form to write
instead. Nothing is guessed.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from sre_tools.exceptions import ValidationError
from sre_tools.slo.model import WINDOW_PLACEHOLDER

GAUGE_STEP = "1m"
"""Resolution of the gauge subqueries: one sample of the expression per minute of the window."""

AGGREGATIONS = ("sum", "count", "min", "max", "avg")
COMPARISONS = ("==", "!=", ">", "<", ">=", "<=")
_OTHER_AGGREGATIONS = frozenset(
    {"group", "stddev", "stdvar", "topk", "bottomk", "quantile", "count_values", "limitk"}
)
_KEYWORDS = frozenset({"by", "without", "bool", "offset", "and", "or", "unless", "on", "ignoring"})
_LITERALS = frozenset({"inf", "nan"})
_GROUPING = frozenset({"by", "without"})
_NOT_METRICS = _KEYWORDS | _OTHER_AGGREGATIONS | frozenset(AGGREGATIONS) | {"Inf", "NaN"}
_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
    |(?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'|`[^`]*`)
    |(?P<number>(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?(?![a-zA-Z0-9_:]))
    |(?P<duration>[0-9]+[a-zA-Z][0-9a-zA-Z]*)
    |(?P<ident>:?[a-zA-Z_][a-zA-Z0-9_:]*)
    |(?P<op>==|!=|>=|<=|=~|!~|[-+*/%^<>=(){}\[\],:@])
    """,
    re.X,
)


class Kind(enum.Enum):
    """What a query measures, which decides how it is windowed."""

    COUNTER = "counter"  # events: a monotonic counter, rated over the window
    GAUGE = "gauge"  # a level: averaged over the window
    RATIO = "ratio"  # a raw ratio (OpenSLO ``raw``): averaged over the window


@dataclass(frozen=True)
class Grouping:
    """The labels an aggregation keeps: ``by (labels)`` or ``without (labels)``."""

    clause: str  # "by" or "without"
    labels: tuple[str, ...]

    @property
    def key(self) -> tuple[str, frozenset[str]]:
        """Equal for groupings that yield the same label sets (order and repeats ignored)."""
        return self.clause, frozenset(self.labels)

    def render(self) -> str:
        return f"{self.clause} ({', '.join(self.labels)})"

    def describe(self) -> str:
        if self.clause == "by" and not self.labels:
            return "nothing (one series)"
        return self.render()


UNGROUPED = Grouping("by", ())


@dataclass(frozen=True)
class Windowed:
    """A query template with ``{{.window}}``; ``grouping`` is None when the user wrote it."""

    template: str
    grouping: Grouping | None


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str
    start: int
    end: int


@dataclass(frozen=True)
class _Parsed:
    """``selector`` alone, or ``op grouping (selector [comparison])``."""

    selector: str
    op: str | None = None
    grouping: Grouping = UNGROUPED
    comparison: str | None = None  # "== 1", "> bool 0.5"

    @property
    def filters(self) -> bool:
        """True when the comparison drops series (no ``bool`` modifier)."""
        return self.comparison is not None and "bool" not in self.comparison.split()


class _Refused(Exception):
    """The query is outside what this module rewrites; the text says why."""


def window_query(query: str, kind: Kind, field: str) -> Windowed:
    """Return ``query`` as a ``{{.window}}`` template for ``kind``, or raise ValidationError.

    The error names ``field`` and carries one line: why the query is refused and the
    ``{{.window}}`` form to write instead.
    """
    text = query.strip()
    try:
        # A rate of an aggregation is wrong however it is windowed: refused first, by name.
        problem = _rate_of_aggregation(
            _tokenize(text.replace(WINDOW_PLACEHOLDER, "5m"), strict=False)
        )
        if problem:
            raise _Refused(problem)
        if WINDOW_PLACEHOLDER in text:
            problem = _bad_range(_tokenize(text.replace(WINDOW_PLACEHOLDER, "5m"), strict=False))
            if problem:
                raise _Refused(problem)
            return Windowed(text, None)
        tokens = _tokenize(text)
        parsed = _Parser(text, tokens).parse()
        return _rewrite(parsed, kind)
    except _Refused as exc:
        raise ValidationError(
            f"{exc}; write the query with {WINDOW_PLACEHOLDER} instead, e.g. "
            f"{_example(text, kind)}",
            field=field,
        ) from None


def _rewrite(parsed: _Parsed, kind: Kind) -> Windowed:
    sel = parsed.selector
    window = WINDOW_PLACEHOLDER
    if parsed.op is None:
        if kind is Kind.COUNTER:
            return Windowed(f"sum(rate({sel}[{window}]))", UNGROUPED)
        if kind is Kind.RATIO:
            return Windowed(f"avg(avg_over_time({sel}[{window}]))", UNGROUPED)
        return Windowed(f"sum(avg_over_time({sel}[{window}]))", UNGROUPED)
    op, grouping = parsed.op, parsed.grouping
    # ``sum(...)`` as the selector form spells it; ``sum by (l) (...)`` when grouped.
    agg = op if grouping == UNGROUPED else f"{op} {grouping.render()} "
    if kind is Kind.COUNTER:
        if parsed.comparison is not None:
            raise _Refused(
                f"a comparison ({parsed.comparison}) on a counter filters its running total, "
                "not its events (set counter: false if the metric is a gauge)"
            )
        if op != "sum":
            raise _Refused(
                f"{op} over a counter is not a count of events: counters are rated per series "
                "and summed"
            )
        return Windowed(f"{agg}(rate({sel}[{window}]))", grouping)
    inner = f"{sel} {parsed.comparison}" if parsed.comparison else sel
    expr = f"{agg}({inner})"
    if parsed.filters:
        if op not in {"sum", "count"}:
            raise _Refused(
                f"{op} over a filtered selector ({parsed.comparison}) has no value while no "
                "series matches, so the window average would skip those minutes (sum and count "
                "are completed with 0)"
            )
        zero = "count" if grouping == UNGROUPED else f"count {grouping.render()} "
        expr = f"{expr} or 0 * {zero}({sel})"
    return Windowed(f"avg_over_time(({expr})[{window}:{GAUGE_STEP}])", grouping)


# Counter functions: applied to an aggregation, they see a sum (or a max...) that drops whenever
# one series restarts, not the series' own increase.
_RANGE_FUNCTIONS = frozenset({"rate", "irate", "increase", "resets"})


def _rate_of_aggregation(tokens: list[_Token]) -> str | None:
    for i, tok in enumerate(tokens[:-2]):
        if tok.text in _RANGE_FUNCTIONS and tokens[i + 1].text == "(":
            inner = tokens[i + 2].text
            if inner in AGGREGATIONS or inner in _OTHER_AGGREGATIONS:
                return (
                    f"{tok.text}() of an aggregation ({tok.text}({inner}(...))) is wrong: the "
                    f"{inner} drops whenever one series restarts; take the {tok.text} of each "
                    f"series first, then aggregate"
                )
    return None


def _bad_range(tokens: list[_Token]) -> str | None:
    """A range ``[...]`` after something other than a series selector, without the ``:`` that
    makes it a subquery: PromQL refuses it (``ranges only allowed for vector selectors``)."""
    for i, tok in enumerate(tokens):
        if tok.text != "[":
            continue
        end = next((j for j in range(i + 1, len(tokens)) if tokens[j].text == "]"), len(tokens))
        subquery = any(t.text == ":" for t in tokens[i + 1 : end])
        prev = tokens[i - 1] if i else None
        selector = prev is not None and (
            prev.text == "}" or (prev.kind == "ident" and prev.text not in _NOT_METRICS)
        )
        if not selector and not subquery:
            return (
                "a range [...] follows a series selector, or (with ':') makes a subquery; "
                "here it follows an expression"
            )
    return None


def _example(text: str, kind: Kind) -> str:
    """The ``{{.window}}`` form to suggest: the query's own ranges templated (where that is
    valid PromQL and no rate of an aggregation), else a wrapper around its first selector."""
    try:
        tokens = _tokenize(text.replace(WINDOW_PLACEHOLDER, "5m"), strict=False)
    except _Refused:
        tokens = []
    if (
        any(t.text == "[" for t in tokens)
        and not _rate_of_aggregation(tokens)
        and not _bad_range(tokens)
    ):
        return _templated_ranges(tokens)
    sel = _first_selector(tokens) or "METRIC"
    if kind is Kind.COUNTER:
        return f"sum(rate({sel}[{WINDOW_PLACEHOLDER}]))"
    if kind is Kind.RATIO:
        return f"avg(avg_over_time({sel}[{WINDOW_PLACEHOLDER}]))"
    return f"sum(avg_over_time({sel}[{WINDOW_PLACEHOLDER}]))"


def _templated_ranges(tokens: list[_Token]) -> str:
    """``rate(x[5m])`` -> ``rate(x[{{.window}}])``; a subquery keeps its step. One line."""
    out: list[str] = []
    in_range = False
    for i, tok in enumerate(tokens):
        spaced = i and tokens[i - 1].end < tok.start
        if spaced and out[-1][-1:] not in "([{" and tok.text not in ")]},":
            out.append(" ")
        if in_range and tok.text in {":", "]"}:
            in_range = False
        elif in_range:
            continue
        out.append(tok.text)
        if tok.text == "[":
            out.append(WINDOW_PLACEHOLDER)
            in_range = True
    return "".join(out)


def _first_selector(tokens: list[_Token]) -> str | None:
    """The first metric selector among ``tokens`` (name and matchers), for the example."""
    depth = 0  # inside braces and by/without lists, identifiers are label names
    for i, tok in enumerate(tokens):
        if tok.text == "{" or (tok.text == "(" and i and tokens[i - 1].text in _GROUPING):
            depth += 1
        elif depth and tok.text in {"}", ")"}:
            depth -= 1
        following = tokens[i + 1].text if i + 1 < len(tokens) else ""
        if depth or tok.kind != "ident" or tok.text in _NOT_METRICS:
            continue
        if following in {"(", "by", "without"}:
            continue
        if following != "{":
            return tok.text
        end = next((j for j in range(i + 1, len(tokens)) if tokens[j].text == "}"), None)
        if end is None:
            return tok.text
        return "".join(t.text for t in tokens[i : end + 1])
    return None


def _tokenize(text: str, *, strict: bool = True) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None or match.lastgroup is None:
            if not strict:
                break
            raise _Refused(f"unexpected {text[pos]!r} at column {pos + 1}")
        kind = match.lastgroup
        if kind != "space":
            tokens.append(_Token(kind, match.group(), match.start(), match.end()))
        pos = match.end()
    if not strict:
        return tokens
    for tok in tokens:
        if tok.text == "[":
            end = next((t for t in tokens if t.start > tok.start and t.text == "]"), None)
            shown = text[tok.start : end.end] if end is not None else "["
            raise _Refused(f"a fixed range {shown} does not follow the SLO windows")
        if tok.text in {"offset", "@"}:
            raise _Refused(f"{tok.text} modifiers are not rewritten")
    return tokens


class _Parser:
    """Recursive descent over the small grammar in the module docstring (depth is bounded)."""

    def __init__(self, text: str, tokens: list[_Token]) -> None:
        self.text = text
        self.tokens = tokens
        self.pos = 0

    def peek(self, ahead: int = 0) -> _Token | None:
        i = self.pos + ahead
        return self.tokens[i] if i < len(self.tokens) else None

    def take(self) -> _Token:
        tok = self.peek()
        if tok is None:
            raise _Refused("the query ends too early")
        self.pos += 1
        return tok

    def expect(self, text: str) -> _Token:
        tok = self.take()
        if tok.text != text:
            raise _Refused(f"expected {text!r}, got {tok.text!r} at column {tok.start + 1}")
        return tok

    def parse(self) -> _Parsed:
        if not self.tokens:
            raise _Refused("the query is empty")
        first = self.tokens[0]
        if first.kind == "ident" and first.text in AGGREGATIONS:
            parsed = self.aggregation()
        else:
            parsed = _Parsed(self.selector())
        rest = self.peek()
        if rest is not None:
            raise self.unexpected(rest, outer=parsed.op is not None)
        return parsed

    def unexpected(self, tok: _Token, *, outer: bool = False) -> _Refused:
        if tok.text in COMPARISONS:
            if outer:
                return _Refused(
                    f"a comparison ({tok.text}) on the aggregated value is not rewritten"
                )
            return _Refused(
                f"a comparison ({tok.text}) outside an aggregation is not rewritten "
                f"(one inside is: sum(x {tok.text} 1))"
            )
        if tok.text in {"+", "-", "*", "/", "%", "^", "and", "or", "unless"}:
            return _Refused(f"binary operator {tok.text!r} is not rewritten")
        return _Refused(f"unexpected {tok.text!r} at column {tok.start + 1}")

    def aggregation(self) -> _Parsed:
        op = self.take().text
        grouping = self.grouping() if self.peek_text() in {"by", "without"} else None
        self.expect("(")
        inner = self.peek()
        if inner is not None and inner.kind == "ident" and self.peek_text(1) == "(":
            if inner.text in AGGREGATIONS or inner.text in _OTHER_AGGREGATIONS:
                raise _Refused("nested aggregations are not rewritten")
            raise _Refused(f"function {inner.text}() is not rewritten")
        if inner is not None and inner.kind in {"number", "string"}:
            raise _Refused(f"{op} with a parameter is not rewritten")
        selector = self.selector()
        comparison = None
        tok = self.peek()
        if tok is not None and tok.text in COMPARISONS:
            comparison = self.comparison()
        tok = self.peek()
        if tok is not None and tok.text != ")":
            raise self.unexpected(tok)
        self.expect(")")
        if self.peek_text() in {"by", "without"}:
            if grouping is not None:
                raise _Refused("the aggregation has two groupings")
            grouping = self.grouping()
        return _Parsed(selector, op, grouping or UNGROUPED, comparison)

    def peek_text(self, ahead: int = 0) -> str:
        tok = self.peek(ahead)
        return tok.text if tok is not None else ""

    def grouping(self) -> Grouping:
        clause = self.take().text
        self.expect("(")
        labels: list[str] = []
        while self.peek_text() != ")":
            tok = self.take()
            if tok.kind != "ident" or not _LABEL.fullmatch(tok.text):
                raise _Refused(f"invalid label name {tok.text!r} in {clause} (...)")
            labels.append(tok.text)
            if self.peek_text() == ",":
                self.take()
            elif self.peek_text() != ")":
                raise self.unexpected(self.take())
        self.expect(")")
        return Grouping(clause, tuple(labels))

    def comparison(self) -> str:
        op = self.take().text
        parts = [op]
        if self.peek_text() == "bool":
            parts.append(self.take().text)
        sign = ""
        if self.peek_text() in {"+", "-"}:
            sign = self.take().text
        tok = self.take()
        if tok.kind == "number" or (tok.kind == "ident" and tok.text.lower() in {"inf", "nan"}):
            parts.append(sign + tok.text)
            return " ".join(parts)
        if tok.kind == "ident" and self.peek_text() == "(":
            raise _Refused(f"function {tok.text}() is not rewritten")
        raise _Refused(
            f"a comparison ({op}) with {tok.text!r} is not rewritten; compare with a number"
        )

    def selector(self) -> str:
        """A series selector, returned as written (the rules keep the user's spelling)."""
        tok = self.take()
        if tok.kind == "ident" and tok.text.lower() in _LITERALS:
            raise _Refused(f"a literal ({tok.text}) is not a series selector")
        if tok.kind == "ident" and tok.text not in _KEYWORDS:
            if tok.text in AGGREGATIONS and self.peek_text() in {"by", "without"}:
                raise _Refused("nested aggregations are not rewritten")
            if self.peek_text() == "(":
                if tok.text in _OTHER_AGGREGATIONS:
                    raise _Refused(
                        f"aggregation {tok.text} is not rewritten ({', '.join(AGGREGATIONS)} are)"
                    )
                raise _Refused(f"function {tok.text}() is not rewritten")
            if self.peek_text() == "{":
                self.matchers(allow_empty=True)
            return self.text[tok.start : self.tokens[self.pos - 1].end]
        if tok.text == "{":
            self.pos -= 1
            self.matchers(allow_empty=False)
            return self.text[tok.start : self.tokens[self.pos - 1].end]
        if tok.kind == "ident" and tok.text in _OTHER_AGGREGATIONS:
            raise _Refused(f"aggregation {tok.text} is not rewritten")
        if tok.kind in {"number", "string"}:
            raise _Refused(f"a literal ({tok.text}) is not a series selector")
        if tok.text == "(":
            raise _Refused("parentheses around a sub-expression are not rewritten")
        raise _Refused(f"unexpected {tok.text!r} at column {tok.start + 1}")

    def matchers(self, *, allow_empty: bool) -> None:
        self.expect("{")
        parts: list[str] = []
        while self.peek_text() != "}":
            label = self.take()
            if label.kind != "ident" or not _LABEL.fullmatch(label.text):
                raise _Refused(f"invalid label name {label.text!r} in a selector")
            op = self.take()
            if op.text not in {"=", "!=", "=~", "!~"}:
                raise _Refused(f"expected a label matcher (=, !=, =~, !~) after {label.text}")
            value = self.take()
            if value.kind != "string":
                raise _Refused(f"expected a quoted value after {label.text}{op.text}")
            parts.append(f"{label.text}{op.text}{value.text}")
            if self.peek_text() == ",":
                self.take()
            elif self.peek_text() != "}":
                raise self.unexpected(self.take())
        self.expect("}")
        if not parts and not allow_empty:
            raise _Refused("a selector needs a metric name or a label matcher")
