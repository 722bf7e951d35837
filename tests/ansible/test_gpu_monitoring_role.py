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


def test_grafana_dashboards_and_provider_are_installed(tmp_path: Path) -> None:
    import json

    import yaml

    from sre_tools.dashboards.generate import DASHBOARDS, packaged_dir

    dashboards, provisioning = tmp_path / "dashboards", tmp_path / "provisioning"
    extra = {
        "gpu_monitoring_grafana_dashboards_dir": str(dashboards),
        "gpu_monitoring_grafana_provisioning_dir": str(provisioning),
        "gpu_monitoring_grafana_folder": "GPU: SRE",
    }
    result = play_role_tasks(tmp_path, "gpu_monitoring", "grafana.yml", extra)
    assert result.returncode == 0, result.stdout[-3000:]
    installed = sorted(p.name for p in dashboards.iterdir())
    assert installed == sorted(f"{name}.json" for name in DASHBOARDS)
    for name in installed:
        assert (dashboards / name).read_bytes() == (packaged_dir() / name).read_bytes()
        assert json.loads((dashboards / name).read_text())["uid"].startswith("sre-")
    provider = yaml.safe_load((provisioning / "sre-tools.yml").read_text())
    assert provider["apiVersion"] == 1
    [entry] = provider["providers"]
    assert entry["type"] == "file"
    assert entry["folder"] == "GPU: SRE"
    assert entry["options"]["path"] == str(dashboards)
    # The role's provider says what `sre dashboards generate` writes, apart from the header.
    generated = yaml.safe_load((packaged_dir() / "sre-tools.yml").read_text())
    generated["providers"][0]["folder"] = "GPU: SRE"
    generated["providers"][0]["options"]["path"] = str(dashboards)
    assert provider == generated


def test_alertmanager_targets_fragment(tmp_path: Path) -> None:
    import json

    sd_file = tmp_path / "am_sd" / "sre-tools.json"
    extra = {
        "gpu_monitoring_alertmanager_targets": ["am-1.example.net:9093", "am-2.example.net:9093"],
        "gpu_monitoring_alertmanager_sd_file": str(sd_file),
        "gpu_monitoring_file_sd_delegate_to": "",
    }
    result = play_role_tasks(tmp_path, "gpu_monitoring", "alertmanager.yml", extra)
    assert result.returncode == 0, result.stdout[-3000:]
    assert json.loads(sd_file.read_text()) == [
        {"targets": ["am-1.example.net:9093", "am-2.example.net:9093"]}
    ]


def test_preflight_refuses_alertmanager_without_targets(tmp_path: Path) -> None:
    extra = {
        "gpu_monitoring_alertmanager_enabled": True,
        "gpu_monitoring_alertmanager_targets": ["no-port.example.net"],
        "ansible_facts": {"os_family": "Debian"},
    }
    result = play_role_tasks(tmp_path, "gpu_monitoring", "preflight.yml", extra)
    assert result.returncode != 0
    assert "gpu_monitoring_alertmanager_targets" in result.stdout


def test_file_sd_fragments_name_the_jobs_the_rules_select(tmp_path: Path) -> None:
    """The sre exporter's fragment carries the job the GPU alert rules (GpuExporterDown/Absent)
    and the fleet dashboard select; node_exporter and dcgm-exporter keep their own jobs."""
    import json

    from sre_tools.exporter.metric_names import SCRAPE_JOB

    sd_dir = tmp_path / "file_sd"
    extra = {
        "gpu_monitoring_file_sd_dir": str(sd_dir),
        "gpu_monitoring_file_sd_delegate_to": "",
        "gpu_monitoring_file_sd_labels": {"cluster": "c1"},
        "gpu_monitoring_dcgm_enabled": True,
        "gpu_monitoring_dcgm_exporter_enabled": True,
    }
    result = play_role_tasks(tmp_path, "gpu_monitoring", "file_sd.yml", extra)
    assert result.returncode == 0, result.stdout[-3000:]
    jobs = {
        path.name.split("-", 1)[0]: json.loads(path.read_text())[0]["labels"]["job"]
        for path in sd_dir.iterdir()
    }
    assert jobs == {"node": "gpu-node", "dcgm": "gpu-dcgm", "sre": SCRAPE_JOB}
    rules = Path(__file__).resolve().parents[2] / "sre_tools/data/alerts/gpu-health.rules.yml"
    assert f'up{{job="{SCRAPE_JOB}"}}' in rules.read_text(encoding="utf-8")
