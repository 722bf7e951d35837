"""Behaviour of the gpu_monitoring role on a Debian 12 systemd container (both scenarios).

Every exporter is asked over HTTP from inside the instance (python3's urllib: the image has no
curl). Package names are Debian's and the fixture repository's, written out as an oracle.
"""

from __future__ import annotations

import base64
import json

import pytest

JOURNAL_UNITS = (
    "prometheus-node-exporter",
    "node_exporter",
    "nvidia-dcgm",
    "dcgm-exporter",
    "sre-exporter",
)

FETCH = """
import sys, time, urllib.request, urllib.error
req = urllib.request.Request(sys.argv[1])
if len(sys.argv) > 2:
    req.add_header("Authorization", "Basic " + sys.argv[2])
for attempt in range(30):
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            print(r.status); sys.stdout.write(r.read().decode()); break
    except urllib.error.HTTPError as e:
        print(e.code); break
    except OSError:
        time.sleep(1)
else:
    print("unreachable")
"""


def get(host, address, path="/metrics", auth=None):
    """(status, body) of an HTTP GET from inside the instance; retries while the port opens."""
    hostport = address if not address.startswith(":") else f"127.0.0.1{address}"
    args = [f"http://{hostport}{path}"] + ([auth] if auth else [])
    out = host.check_output("python3 -c %s " + " ".join(["%s"] * len(args)), FETCH, *args)
    status, _, body = out.partition("\n")
    return status, body


def test_node_exporter_answers(host, role_vars):
    status, body = get(host, role_vars["gpu_monitoring_node_exporter_listen_address"])
    assert status == "200", body
    assert "node_exporter_build_info" in body or "node_textfile_scrape_error" in body


def test_textfile_collector_reads_the_directory(host, role_vars):
    directory = role_vars["gpu_monitoring_textfile_dir"]
    assert host.file(directory).is_directory
    host.run_expect([0], "echo 'sre_molecule_probe 42' > %s/probe.prom", directory)
    try:
        _, body = get(host, role_vars["gpu_monitoring_node_exporter_listen_address"])
        assert "sre_molecule_probe 42" in body
    finally:
        host.run("rm -f %s/probe.prom", directory)


def test_node_exporter_source(host, role_vars):
    pin = host.file("/etc/apt/preferences.d/gpu-monitoring-node-exporter.pref")
    if role_vars["gpu_monitoring_node_exporter_source"] == "package":
        name = "prometheus-node-exporter"
        version = role_vars["gpu_monitoring_node_exporter_package_version"]
        pkg = host.package(name)
        assert pkg.is_installed and pkg.version.startswith(f"{version}-"), pkg.version
        assert host.check_output("dpkg --get-selections %s", name).split() == [name, "hold"]
        assert f"Package: {name}\nPin: version {version}-*\nPin-Priority: 1001" in (
            pin.content_string
        )
        # apt sees the pin: the installed build at priority 1001.
        policy = host.check_output("apt-cache policy %s", name)
        assert f"*** {pkg.version} 1001" in policy, policy
        assert host.service("prometheus-node-exporter").is_running
        return
    assert not pin.exists
    binary = host.file("/usr/local/bin/node_exporter")
    assert binary.mode == 0o755
    version = host.run("/usr/local/bin/node_exporter --version")
    assert role_vars["gpu_monitoring_node_exporter_version"] in version.stdout + version.stderr
    service = host.service("node_exporter")
    assert service.is_running and service.is_enabled
    assert host.process.filter(comm="node_exporter", user="node-exporter")


def test_dcgm_installed_pinned_and_held(host, role_vars):
    packages = ("datacenter-gpu-manager-4-core", "datacenter-gpu-manager-4-cuda12")
    if not role_vars["gpu_monitoring_dcgm_enabled"]:
        for name in packages:
            assert not host.package(name).is_installed
        return
    for name in packages:
        pkg = host.package(name)
        assert pkg.is_installed and pkg.version == "4.2.3-1", (name, pkg.version)
        assert host.check_output("dpkg --get-selections %s", name).split() == [name, "hold"]
    # 4.3.0-1 is offered; the pin keeps 4.2.3.
    assert "4.3.0-1" in host.check_output("apt-cache policy datacenter-gpu-manager-4-core")
    exporter = host.package("datacenter-gpu-manager-exporter")
    assert exporter.version == "4.2.3-4.1.3-1"
    assert host.service("nvidia-dcgm").is_running


def test_dcgm_exporter_answers(host, role_vars):
    if not role_vars["gpu_monitoring_dcgm_exporter_enabled"]:
        assert not host.file("/etc/systemd/system/dcgm-exporter.service").exists
        return
    assert host.service("dcgm-exporter").is_enabled
    status, body = get(host, role_vars["gpu_monitoring_dcgm_exporter_listen_address"])
    assert status == "200" and "DCGM_FI_DEV_GPU_TEMP" in body, body


def test_sre_exporter_serves_the_recording_behind_basic_auth(host, role_vars):
    if not role_vars["gpu_monitoring_sre_exporter_enabled"]:
        assert not host.file("/etc/systemd/system/sre-exporter.service").exists
        return
    address = role_vars["gpu_monitoring_sre_exporter_listen_address"]
    assert address.startswith("127.0.0.1:")
    users = role_vars["gpu_monitoring_sre_exporter_basic_auth_users"]
    auth_file = host.file("/etc/sre-tools/exporter/basic-auth")
    if users:
        assert auth_file.mode == 0o600
        status, _ = get(host, address)
        assert status == "401"
        token = base64.b64encode(b"prometheus:molecule-test-password").decode()
        status, body = get(host, address, auth=token)
    else:
        status, body = get(host, address)
    assert status == "200", body
    assert "gpu_up{" in body and "gpu_count 1.0" in body, body[:500]


def test_file_sd_fragments(host, role_vars):
    directory = role_vars["gpu_monitoring_file_sd_dir"]
    jobs = {
        "node": (True, role_vars["gpu_monitoring_node_exporter_listen_address"]),
        "dcgm": (
            role_vars["gpu_monitoring_dcgm_exporter_enabled"],
            role_vars["gpu_monitoring_dcgm_exporter_listen_address"],
        ),
        "sre": (
            role_vars["gpu_monitoring_sre_exporter_enabled"],
            role_vars["gpu_monitoring_sre_exporter_listen_address"],
        ),
    }
    name = role_vars["inventory_hostname"]
    target_host = role_vars.get("gpu_monitoring_file_sd_target_host", name)
    if "{{" in target_host:
        target_host = name
    for job, (enabled, address) in jobs.items():
        fragment = host.file(f"{directory}/{job}-{name}.json")
        if not enabled:
            assert not fragment.exists, job
            continue
        data = json.loads(fragment.content_string)
        port = address.rsplit(":", 1)[1]
        assert data[0]["targets"] == [f"{target_host}:{port}"]
        # The sre exporter's job is the one the alert rules select (GpuExporterDown/Absent).
        assert data[0]["labels"]["job"] == ("sre-gpu-exporter" if job == "sre" else f"gpu-{job}")
        for key, value in role_vars["gpu_monitoring_file_sd_labels"].items():
            assert data[0]["labels"][key] == value


def test_file_sd_fragments_load_in_prometheus_format(host, role_vars):
    """Each fragment is a list of {targets, labels} with string label values (file_sd format)."""
    directory = role_vars["gpu_monitoring_file_sd_dir"]
    listing = host.check_output("ls %s", directory).split()
    if not listing:
        pytest.fail("no fragments written")
    for name in listing:
        data = json.loads(host.file(f"{directory}/{name}").content_string)
        assert isinstance(data, list) and data
        for group in data:
            assert set(group) == {"targets", "labels"}
            assert all(isinstance(v, str) for v in group["labels"].values())
