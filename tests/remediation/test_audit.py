"""The audit log: concurrent writers (processes and threads), torn lines, the operator view."""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from sre_tools.exceptions import ValidationError
from sre_tools.health.model import Action
from sre_tools.remediation.audit import AuditLog, append_audit, read_audit
from sre_tools.remediation.model import Decision, Outcome, RemediationRequest

WRITER = """
import sys
from sre_tools.remediation.audit import append_audit
path, who, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
pad = "x" * 6000  # larger than PIPE_BUF: only the lock keeps records whole
for i in range(count):
    record = {"who": who, "seq": i, "at": float(i), "node": f"gpu{i % 16:02d}", "pad": pad}
    append_audit(path, record)
"""


def test_concurrent_processes_never_tear_a_record(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    writers, count = 6, 150
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(path), f"w{n}", str(count)])
        for n in range(writers)
    ]
    for p in procs:
        assert p.wait(timeout=60) == 0
    raw = path.read_bytes()
    lines = raw.split(b"\n")
    assert lines[-1] == b"" and len(lines) == writers * count + 1
    records = [json.loads(line) for line in lines[:-1]]  # every line is whole JSON
    seen = {(r["who"], r["seq"]) for r in records}
    assert len(seen) == writers * count
    for n in range(writers):  # each writer's records in its own order
        seqs = [r["seq"] for r in records if r["who"] == f"w{n}"]
        assert seqs == sorted(seqs)


def test_concurrent_threads(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda i: append_audit(path, {"i": i, "pad": "y" * 5000}), range(400)))
    assert sorted(r["i"] for r in read_audit(path, strict=True)) == list(range(400))


def test_a_torn_line_costs_only_itself(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "audit.jsonl"
    append_audit(path, {"n": 1, "at": 1.0})
    with path.open("ab") as fh:
        fh.write(b'{"n": 2, "at": 2.0, "mess')  # a writer killed mid-record
    append_audit(path, {"n": 3, "at": 3.0})
    assert [r["n"] for r in read_audit(path)] == [1, 3]
    assert "line 2" in caplog.text
    with pytest.raises(ValidationError, match="line 2"):
        read_audit(path, strict=True)


def test_records_stay_on_one_line(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    append_audit(path, {"message": "a\nb\u2028c\x1b[31m", "at": 1.0})
    raw = path.read_bytes()
    assert raw.count(b"\n") == 1 and raw.isascii()
    assert read_audit(path)[0]["message"] == "a\nb\u2028c\x1b[31m"


def test_oversized_record_keeps_its_identity(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    append_audit(path, {"outcome": "acted", "node": "gpu01", "at": 1.0, "evidence": "z" * 100_000})
    (rec,) = read_audit(path, strict=True)
    assert rec["truncated"] and rec["node"] == "gpu01" and "evidence" not in rec


def test_filters_and_decision_records(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "sub" / "audit.jsonl")
    req = RemediationRequest("gpu01", Action.REBOOT, "e1", source="salt", gpus=(2,))
    for at, node in ((100.0, "gpu01"), (200.0, "gpu02"), (300.0, "gpu01")):
        d = Decision(Outcome.REFUSED, "cooldown", "wait", node=node, action=Action.REBOOT, at=at)
        log.write(d, req if node == "gpu01" else None, dry_run=at == 300.0)
    assert [r["at"] for r in log.read(since=150)] == [200.0, 300.0]
    assert [r["at"] for r in log.read(node="gpu01")] == [100.0, 300.0]
    first = log.read()[0]
    assert first["v"] == 1 and first["ts"] == "1970-01-01T00:01:40Z"
    assert (first["source"], first["gpus"], first["dry_run"]) == ("salt", [2], False)
    assert log.read()[1]["source"] is None
    assert read_audit(tmp_path / "missing.jsonl") == []
