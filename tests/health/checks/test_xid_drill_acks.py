"""XID lines written by a chaos drill: counted like the driver's own until the drill's rollback
acknowledges its run (``xid.drill_acks_file``), then dropped, on a node whose kernel log cannot
be edited (``/dev/kmsg``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sre_tools.chaos.actions import xid_line
from sre_tools.health.model import Action, Severity
from sre_tools.health.xid.model import drill_marker, drill_run_of
from tests.health.checks.conftest import H100, Runner, only

BUS = "0000:00:06"  # the H100 capture's GPU (00000000:00:06.0)
RUN = "drill-20261207T052100Z-abc123"
REAL = f"[ 9.5] NVRM: Xid (PCI:{BUS}): 48, pid=1234, name=python, An uncorrectable ECC error"


def site(acks: Path) -> str:
    return f"profile: h100\nxid:\n  drill_acks_file: {acks}\n"


def test_a_drill_line_counts_until_its_run_is_acknowledged(run: Runner, tmp_path: Path) -> None:
    acks = tmp_path / "acks"
    lines = [f"[ 12.0] {xid_line(79, BUS, RUN)}"]
    (finding,) = only(run(H100, config=site(acks), kernel_log_lines=lines), "xid")
    assert (finding.severity, finding.action) == (Severity.CRIT, Action.REBOOT)
    assert finding.evidence["drill_runs"] == [RUN]
    assert finding.evidence["events"][0]["drill_run"] == RUN
    acks.write_text(f"other-run\n{RUN}\n")
    (finding,) = only(run(H100, config=site(acks), kernel_log_lines=lines), "xid")
    assert finding.severity is Severity.OK
    assert finding.evidence["acknowledged_drill_events"] == 1


def test_acknowledging_a_drill_never_hides_a_real_xid(run: Runner, tmp_path: Path) -> None:
    acks = tmp_path / "acks"
    acks.write_text(RUN + "\n")
    lines = [f"[ 12.0] {xid_line(79, BUS, RUN)}", REAL]
    (finding,) = only(run(H100, config=site(acks), kernel_log_lines=lines), "xid")
    assert finding.severity is Severity.CRIT and finding.evidence["counts"] == {"48": 1}
    assert finding.evidence["acknowledged_drill_events"] == 1


def test_an_unreadable_ack_file_acknowledges_nothing(run: Runner, tmp_path: Path) -> None:
    acks = tmp_path / "acks"
    acks.mkdir()  # a directory: read fails for root too
    lines = [f"[ 12.0] {xid_line(79, BUS, RUN)}"]
    (finding,) = only(run(H100, config=site(acks), kernel_log_lines=lines), "xid")
    assert finding.severity is Severity.CRIT  # still counts: the safe side
    assert str(acks) in finding.evidence["drill_acks_error"]


def test_a_large_ack_file_is_read_from_its_end(run: Runner, tmp_path: Path) -> None:
    """The newest acknowledgments count (their lines can still be in the ring buffer); ids more
    than 64 KiB from the end are no longer read."""
    acks = tmp_path / "acks"
    old = "drill-20200101T000000Z-aaaaaa"
    filler = "".join(f"drill-20250101T000000Z-{i:06x}\n" for i in range(4000))
    acks.write_text(f"{old}\n{filler}{RUN}\n")
    assert acks.stat().st_size > 64 * 1024
    lines = [f"[ 12.0] {xid_line(79, BUS, RUN)}", f"[ 13.0] {xid_line(79, BUS, old)}"]
    (finding,) = only(run(H100, config=site(acks), kernel_log_lines=lines), "xid")
    assert finding.evidence["acknowledged_drill_events"] == 1  # RUN's; the old run counts again
    assert finding.severity is Severity.CRIT and finding.evidence["counts"] == {"79": 1}


def test_marker_round_trip_and_foreign_tags() -> None:
    assert drill_run_of(f"NVRM: Xid (PCI:{BUS}): 79, x {drill_marker(RUN)}") == RUN
    assert drill_run_of(REAL) is None
    assert drill_run_of("[sre-drill run=$(reboot)]") is None
    with pytest.raises(ValueError):
        drill_marker("a b")
