"""gpu_monitoring's node_exporter download fails on a wrong sha256 before anything is installed
(the role's task file run for real on localhost, no container)."""

from __future__ import annotations

import tarfile
from pathlib import Path

from tests.ansible.conftest import play_role_tasks


def test_node_exporter_download_fails_on_a_wrong_checksum(tmp_path: Path) -> None:
    tarball = tmp_path / "node_exporter-9.9.9.linux-amd64.tar.gz"
    member = tmp_path / "node_exporter"
    member.write_text("#!/bin/sh\necho fake\n", encoding="utf-8")
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(member, arcname="node_exporter-9.9.9.linux-amd64/node_exporter")
    extra = {
        "gpu_monitoring_node_exporter_url": f"file://{tarball}",
        "gpu_monitoring_node_exporter_sha256": "0" * 64,
    }
    result = play_role_tasks(tmp_path, "gpu_monitoring", "node_exporter-binary.yml", extra)
    assert result.returncode != 0
    assert "did not match" in result.stdout or "checksum" in result.stdout.lower(), result.stdout[
        -3000:
    ]
    # Nothing was unpacked or installed.
    cache = tmp_path / "home" / ".cache" / "gpu-monitoring"
    assert not list(cache.rglob("node_exporter-9.9.9.linux-amd64"))
