"""The CLI's error contract, checked on the real process.

Bad input: exit 2 and exactly one stderr line ``sre: error: FILE: FIELD: reason`` without a
traceback (``--debug`` adds one). Runtime failures exit 1, usage errors 2. ``sre --help`` lists
the commands without importing NVML, Salt, Ansible or the SLO engine.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers.procs import closed_port

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "sre_tools" / "data" / "examples" / "slos"
SLOTH_EXAMPLE = str(EXAMPLES / "gpu-cluster.sloth.yaml")


def sre_argv() -> list[str]:
    """The installed ``sre`` script next to this interpreter, else ``python -m``."""
    script = shutil.which("sre", path=str(Path(sys.executable).parent)) or shutil.which("sre")
    if script:
        return [script]
    return [sys.executable, "-m", "sre_tools.cli.main"]


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def err_lines(self) -> list[str]:
        return self.err.splitlines()


def run(
    *args: str, cwd: Path, stdin: str | None = None, env: dict[str, str] | None = None
) -> Result:
    full_env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200", **(env or {})}
    full_env.pop("SRE_STORE", None)
    full_env["XDG_DATA_HOME"] = str(cwd / "xdg")  # never touch the user's store
    proc = subprocess.run(
        [*sre_argv(), *args],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        env=full_env,
        timeout=60,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


SLOTH_BAD_OBJECTIVE = """\
version: prometheus/v1
service: api
slos:
  - name: availability
    objective: 120
    sli:
      raw:
        error_ratio_query: 1 - avg(up[{{.window}}])
"""
OPENSLO_BAD_DURATION = """\
apiVersion: openslo/v1
kind: SLO
metadata:
  name: availability
spec:
  service: api
  indicator:
    spec:
      ratioMetric:
        good: {metricSource: {spec: {query: ok_total}}}
        total: {metricSource: {spec: {query: all_total}}}
  timeWindow:
    - duration: 30 days
      isRolling: true
  budgetingMethod: Occurrences
  objectives:
    - target: 0.99
"""
BAD_WINDOWS = """\
apiVersion: sloth.slok.dev/v1
kind: AlertWindows
spec:
  sloPeriod: 30d
  page:
    quick: {errorBudgetPercent: 2, longWindow: 1h, shortWindow: 2h}
    slow: {errorBudgetPercent: 5, longWindow: 6h, shortWindow: 30m}
  ticket:
    quick: {errorBudgetPercent: 10, longWindow: 1d, shortWindow: 2h}
    slow: {errorBudgetPercent: 10, longWindow: 3d, shortWindow: 6h}
"""


def files(**contents: str | bytes) -> Callable[[Path], None]:
    def setup(tmp: Path) -> None:
        for name, content in contents.items():
            path = tmp / name.replace("__", ".")
            if isinstance(content, bytes):
                path.write_bytes(content)
            else:
                path.write_text(content)

    return setup


def nothing(tmp: Path) -> None:
    return None


@dataclass
class Case:
    args: tuple[str, ...]
    code: int
    needles: tuple[str, ...]
    setup: Callable[[Path], None] = nothing
    stdin: str | None = None


BAD_INPUT = {
    "unreadable-file": Case(
        ("slo", "validate", "missing.yaml"), 2, ("sre: error: missing.yaml: cannot read",)
    ),
    "directory-as-file": Case(
        ("slo", "validate", "specs"),
        2,
        ("specs: cannot read",),
        lambda tmp: (tmp / "specs").mkdir(),
    ),
    "not-utf8": Case(
        ("slo", "validate", "latin1.yaml"),
        2,
        ("latin1.yaml: not a UTF-8 text file",),
        files(latin1__yaml=b"service: caf\xe9\n"),
    ),
    "bad-yaml": Case(
        ("slo", "rules", "bad.yaml"),
        2,
        (
            "bad.yaml: invalid YAML: mapping values are not allowed in this context "
            "at line 2, column 11",
        ),
        files(bad__yaml="version: prometheus/v1\nservice: a: b\nslos: []\n"),
    ),
    "bad-yaml-stdin": Case(("slo", "validate", "-"), 2, ("<stdin>: invalid YAML",), stdin="a: [\n"),
    "empty-file": Case(
        ("slo", "validate", "empty.yaml"),
        2,
        ("empty.yaml: no SLO documents found",),
        files(empty__yaml=""),
    ),
    "schema-error": Case(
        ("slo", "validate", "spec.yaml"),
        2,
        ("sre: error: spec.yaml: slos[0].objective: must be in (0, 100), got 120",),
        files(spec__yaml=SLOTH_BAD_OBJECTIVE),
    ),
    "schema-error-in-report": Case(
        ("slo", "report", "spec.yaml", "--store", "none.db"),
        2,
        ("spec.yaml: slos[0].objective",),
        files(spec__yaml=SLOTH_BAD_OBJECTIVE),
    ),
    "bad-duration-in-spec": Case(
        ("slo", "rules", "slo.yaml"),
        2,
        ("slo.yaml: spec.timeWindow[0].duration: invalid duration '30 days'",),
        files(slo__yaml=OPENSLO_BAD_DURATION),
    ),
    "bad-period-option": Case(
        ("slo", "validate", SLOTH_EXAMPLE, "--period", "a month"),
        2,
        ("sre: error: --period: invalid duration 'a month'",),
    ),
    "bad-alert-windows": Case(
        ("slo", "rules", SLOTH_EXAMPLE, "--alert-windows", "windows.yaml"),
        2,
        ("windows.yaml: spec.page.quick.shortWindow: must be shorter than longWindow",),
        files(windows__yaml=BAD_WINDOWS),
    ),
    "missing-alert-windows": Case(
        ("slo", "validate", SLOTH_EXAMPLE, "--alert-windows", "nope.yaml"),
        2,
        ("nope.yaml: cannot read",),
    ),
    "unknown-slo-id": Case(
        ("slo", "report", SLOTH_EXAMPLE, "--slo", "nope", "--store", "none.db"),
        2,
        ("sre: error: --slo: unknown SLO 'nope'", "slurm-scheduler-job-launch-success"),
    ),
    "bad-at": Case(
        ("slo", "report", SLOTH_EXAMPLE, "--at", "yesterday", "--store", "none.db"),
        2,
        ("--at: invalid timestamp 'yesterday'",),
    ),
    "bad-csv-row": Case(
        ("sli", "import", "data.csv", "--store", "s.db"),
        2,
        ("sre: error: data.csv: row 3: good: good (5) is greater than total (2)",),
        files(data__csv="timestamp,slo,good,total\n@1700000000,a,1,1\n@1700000060,a,5,2\n"),
    ),
    "bad-csv-header": Case(
        ("sli", "import", "data.csv", "--store", "s.db"),
        2,
        ("data.csv: header: row 1: header must be timestamp,slo,good,total",),
        files(data__csv="when,slo,good,total\n"),
    ),
    "bad-record-value": Case(
        ("sli", "record", "--slo", "a", "--good", "5", "--total", "2", "--store", "s.db"),
        2,
        ("good (5) is greater than total (2)",),
    ),
    "bad-prometheus-url": Case(
        ("slo", "report", SLOTH_EXAMPLE, "--prometheus", "localhost:9090"),
        2,
        ("--prometheus: invalid Prometheus URL",),
    ),
}
RUNTIME = {
    "store-missing": Case(
        ("slo", "report", SLOTH_EXAMPLE, "--store", "missing.db"),
        1,
        ("missing.db: store does not exist",),
    ),
    "store-not-sqlite": Case(
        ("slo", "report", SLOTH_EXAMPLE, "--store", "junk.db"),
        1,
        ("junk.db: cannot open store",),
        files(junk__db="this is not a database" * 100),
    ),
    "output-folder-missing": Case(
        ("slo", "rules", SLOTH_EXAMPLE, "-o", "no/such/dir/rules.yml"),
        1,
        ("no/such/dir/rules.yml: cannot write",),
    ),
}
USAGE = {
    "unknown-command": Case(("nope",), 2, ("sre: usage error:", "nope")),
    "unknown-subcommand": Case(("slo", "nope"), 2, ("sre: usage error:", "nope")),
    "missing-argument": Case(("slo", "validate"), 2, ("sre: usage error:", "FILES")),
    "unknown-option": Case(("slo", "validate", "--bogus", "x.yaml"), 2, ("--bogus",)),
    "store-and-prometheus": Case(
        ("slo", "report", SLOTH_EXAMPLE, "--store", "s.db", "--prometheus", "http://x:9090"), 2,
        ("either --prometheus or --store",),
    ),
    "bad-float-option": Case(
        ("sli", "record", "--slo", "a", "--good", "lots", "--total", "2"), 2, ("--good",)
    ),
}  # fmt: skip


def check_one_line(result: Result, case: Case) -> None:
    assert result.code == case.code, result
    assert len(result.err_lines) == 1, result.err
    assert "Traceback" not in result.err
    for needle in case.needles:
        assert needle in result.err_lines[0], (needle, result.err)


@pytest.mark.parametrize("name", BAD_INPUT)
def test_bad_input_one_line_exit_2(name: str, tmp_path: Path):
    case = BAD_INPUT[name]
    case.setup(tmp_path)
    result = run(*case.args, cwd=tmp_path, stdin=case.stdin)
    check_one_line(result, case)
    assert result.err_lines[0].startswith("sre: error: ")


@pytest.mark.parametrize("name", RUNTIME)
def test_runtime_failure_exit_1(name: str, tmp_path: Path):
    case = RUNTIME[name]
    case.setup(tmp_path)
    check_one_line(run(*case.args, cwd=tmp_path), case)


def test_prometheus_unreachable_exit_1(tmp_path: Path):
    with closed_port() as port:
        url = f"http://127.0.0.1:{port}"
        case = Case((), 1, ("sre: error: ", url, "cannot reach Prometheus"))
        result = run(
            "slo", "report", SLOTH_EXAMPLE, "--prometheus", url, "--timeout", "5", cwd=tmp_path
        )
    check_one_line(result, case)


@pytest.mark.parametrize("name", USAGE)
def test_usage_error_exit_2(name: str, tmp_path: Path):
    case = USAGE[name]
    check_one_line(run(*case.args, cwd=tmp_path), case)


@pytest.mark.parametrize("name", ["schema-error", "bad-csv-row", "unknown-slo-id", "bad-yaml"])
def test_debug_shows_traceback_and_keeps_exit_code(name: str, tmp_path: Path):
    case = BAD_INPUT[name]
    case.setup(tmp_path)
    result = run("--debug", *case.args, cwd=tmp_path, stdin=case.stdin)
    assert result.code == case.code
    assert "Traceback (most recent call last)" in result.err
    assert "sre_tools.exceptions." in result.err  # ValidationError or its NotFoundError
    assert result.err_lines[-1].startswith("sre: error: ")
    for needle in case.needles:
        assert needle in result.err_lines[-1]


def test_debug_traceback_for_runtime_failure(tmp_path: Path):
    result = run("--debug", "slo", "report", SLOTH_EXAMPLE, "--store", "missing.db", cwd=tmp_path)
    assert result.code == 1
    assert "Traceback (most recent call last)" in result.err
    assert "StoreError" in result.err


def test_valid_input_exits_0(tmp_path: Path):
    result = run("slo", "validate", *map(str, sorted(EXAMPLES.glob("*.yaml"))), cwd=tmp_path)
    assert result.code == 0, result.err
    assert result.err == ""
    assert "4 SLOs valid" in result.out


def test_help_lists_commands(tmp_path: Path):
    result = run("--help", cwd=tmp_path)
    assert result.code == 0
    assert result.err == ""
    for command in ("slo", "sli", "report", "incident", "reliability"):
        assert f"  {command} " in result.out, command
    assert "--debug" in result.out


HEAVY = (
    "pynvml",
    "salt",
    "ansible",
    "sre_tools.slo",
    "sre_tools.sli",
    "sre_tools.gpu",
    "yaml",
    "psycopg",
)


def test_help_imports_no_heavy_modules(tmp_path: Path):
    argv = sre_argv()
    if argv[0] != sys.executable:  # the console script is Python: run it under -X importtime
        argv = [sys.executable, *argv]
    proc = subprocess.run(
        [argv[0], "-X", "importtime", *argv[1:], "--help"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    imported = {
        line.split("|")[-1].strip()
        for line in proc.stderr.splitlines()
        if line.startswith("import time:")
    }
    assert "click" in imported  # the parse worked
    heavy = sorted(m for m in imported if any(m == h or m.startswith(h + ".") for h in HEAVY))
    assert heavy == []


def test_help_in_process_leaves_modules_unimported():
    code = (
        "import sys\n"
        "from sre_tools.cli.main import main\n"
        "rc = main(['--help'])\n"
        "heavy = {'pynvml', 'salt', 'ansible', 'psycopg'}\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in heavy]\n"
        "print(rc, bad)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip().splitlines()[-1] == "0 []", proc.stdout + proc.stderr
