"""``sre diag bundle``: RMA evidence, what could not be collected, and no secrets."""

from __future__ import annotations

import gzip
import json
import stat
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import CliResult
from tests.diag.conftest import FIXTURES, HGX

# ruff: noqa: E501  (kernel-log lines are as long as the driver writes them)

Sre = Callable[..., CliResult]
TOKEN = "tok-9f8e7d6c5b4a3210"
PASSWORD = "hunter2-correct-horse"

BUG_REPORT = """#!{python}
import gzip, os, sys
out = sys.argv[sys.argv.index("--output-file") + 1]
with gzip.open(out + ".gz", "wt") as fh:
    fh.write("nvidia-bug-report stand-in\\n")
    for key, value in sorted(os.environ.items()):
        fh.write(f"{{key}}={{value}}\\n")
"""

KERNEL_LOG = """\
[  10.000000] Linux version 6.1.0
[  12.000000] usb 1-1: new high-speed USB device
[ 100.000000] NVRM: Xid (PCI:0000:5d:00): 48, pid=1234, name=python, An uncorrectable double bit error (DBE) has been detected on GPU in the framebuffer at partition 1, subpartition 0.
[ 100.100000] NVRM: Xid (PCI:0000:5d:00): 63, pid=1234, name=python, Row Remapper: New row (0x0000000000123456) has been marked for remapping
[ 200.000000] audit: auth token={token}
"""


def _members(archive: Path) -> dict[str, bytes]:
    out = {}
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar.getmembers():
            fh = tar.extractfile(member)
            assert fh is not None
            out[member.name.split("/", 1)[1]] = fh.read()
    return out


@pytest.fixture
def node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    monkeypatch.setenv("SRE_API_TOKEN", TOKEN)
    monkeypatch.setenv("DB_PASSWORD", PASSWORD)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    log = tmp_path / "kern.log"
    log.write_text(KERNEL_LOG.format(token=TOKEN))
    return {"bin": bin_dir, "log": log}


def _bundle(sre: Sre, tmp_path: Path, node: dict[str, Path], *extra: str) -> CliResult:
    return sre(
        "diag", "bundle", "-o", str(tmp_path / "b.tar.gz"), "--replay", str(HGX),
        "--kernel-log", str(node["log"]), "--store", str(tmp_path / "s.db"), "--node",
        "hgx-h100-8", *extra,
    )  # fmt: skip


def test_bundle_holds_the_evidence_and_no_secret(
    sre: Sre, tmp_path: Path, node: dict[str, Path]
) -> None:
    tool = node["bin"] / "nvidia-bug-report.sh"
    tool.write_text(BUG_REPORT.format(python=sys.executable))
    tool.chmod(tool.stat().st_mode | stat.S_IXUSR)
    store = tmp_path / "s.db"
    assert sre(
        "diag", "import", str(FIXTURES / "dcgm/level2-memory-fail-gpu3.json"), "--store",
        str(store), "--node", "hgx-h100-8",
    )[0] == 2  # fmt: skip
    # A site file holds only policy keys (anything else is refused), so config secrets are
    # tested on redact_mapping below; the site file is still included.
    site = tmp_path / "site.yaml"
    site.write_text("profile: h100-sxm-8\n")
    rc, out, err = _bundle(sre, tmp_path, node, "--site", str(site))
    assert rc == 0, err
    assert "8 item(s) collected, 0 not collected" in out
    members = _members(tmp_path / "b.tar.gz")
    assert set(members) == {
        "gpus.json", "health.json", "diagnostics.json", "kernel.log", "xid.json", "site.json",
        "nvidia-bug-report.log.gz", "MANIFEST.json",
    }  # fmt: skip
    gpus = json.loads(members["gpus.json"])
    assert gpus["system"]["driver_version"] == "580.159.04"
    assert [g["serial"] for g in gpus["gpus"]] == [str(1752624007973 + 17 * i) for i in range(8)]
    assert gpus["gpus"][3]["vbios_version"] == "96.00.DA.00.0C"
    assert (
        "remapped_rows" in gpus["gpus"][3] and "ecc_errors(uncorrected,volatile)" in gpus["gpus"][3]
    )
    health = json.loads(members["health.json"])
    assert health["host"] == "hgx-h100-8" and health["schema_version"] == 1
    diags = json.loads(members["diagnostics.json"])
    assert diags["runs"][0]["status"] == "crit"
    assert any(
        r["check"] == "diag.dcgm.memory" and r["severity"] == "crit" for r in diags["results"]
    )
    xids = json.loads(members["xid.json"])
    assert {e["xid"] for e in xids["events"]} == {48, 63}
    assert xids["gpus"][0]["action"] != "none"
    kernel = members["kernel.log"].decode()
    assert "Xid (PCI:0000:5d:00): 48" in kernel
    manifest = json.loads(members["MANIFEST.json"])
    assert manifest["not_collected"] == []
    report = gzip.decompress(members["nvidia-bug-report.log.gz"]).decode()
    assert report.startswith("nvidia-bug-report stand-in")
    assert "SRE_API_TOKEN" not in report  # ran with PATH only
    everything = b"".join(members.values()) + b"".join(
        gzip.decompress(v) for k, v in members.items() if k.endswith(".gz")
    )
    assert TOKEN.encode() not in everything
    assert PASSWORD.encode() not in everything
    assert b"<redacted>" in members["kernel.log"]  # the token in the log line was replaced


def test_manifest_says_what_could_not_be_collected(
    sre: Sre, tmp_path: Path, node: dict[str, Path]
) -> None:
    rc, out, err = _bundle(sre, tmp_path, node)
    assert rc == 0, err
    assert "not collected (see MANIFEST)" in out
    members = _members(tmp_path / "b.tar.gz")
    manifest = json.loads(members["MANIFEST.json"])
    missing = {m["file"]: m["reason"] for m in manifest["not_collected"]}
    assert missing["nvidia-bug-report.log.gz"] == "nvidia-bug-report.sh is not on PATH"
    assert "store does not exist" in missing["diagnostics.json"]
    assert "nvidia-bug-report.log.gz" not in members


def test_config_secrets_are_redacted_by_key() -> None:
    from sre_tools.diag.bundle import redact_mapping

    data = {"notify": {"webhook_token": TOKEN, "url": "https://x"}, "db": [{"password": PASSWORD}]}
    redacted = json.dumps(redact_mapping(data))
    assert TOKEN not in redacted and PASSWORD not in redacted
    assert "https://x" in redacted


def test_bundle_to_an_unwritable_place_is_one_line(
    sre: Sre, tmp_path: Path, node: dict[str, Path]
) -> None:
    rc, out, err = sre(
        "diag", "bundle", "-o", str(tmp_path / "missing-dir" / "b.tar.gz"), "--replay", str(HGX),
        "--kernel-log", str(node["log"]), "--store", str(tmp_path / "s.db"),
    )  # fmt: skip
    assert rc == 3 and out == ""
    assert err.startswith("sre: error: ") and err.count("\n") == 1
    assert not list(tmp_path.glob("**/.b.tar.gz*"))  # no temporary file left
