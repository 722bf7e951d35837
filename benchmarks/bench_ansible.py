"""Ansible speed against real SSH nodes (podman containers, tests/helpers/podman_nodes.py).

1. site: playbooks/site.yml converged once on a container, then re-run (3 times; the median is
   the figure, the last re-run also prints profile_tasks' slowest tasks); every re-run must change
   nothing. Goal: under 60 s, changed=0, with the shipped ansible.cfg (strategy ``sre_linear``:
   Ansible's linear strategy over mitogen, playbooks/strategy_plugins/sre_linear.py). The same
   re-runs with ``ANSIBLE_STRATEGY=linear`` (plain SSH with pipelining and ControlPersist) are
   the reference row. Then site.yml in check mode on the converged node: must report changed=0.
   Container switches (no GPU, no kernel module, the fixture apt repository) are the site
   scenario's group variables (molecule/site/molecule.yml, provisioner.inventory.group_vars.all).
2. validate: playbooks/validate.yml over N nodes (default 8) with the shipped ansible.cfg
   (forks 20, pipelining, ControlPersist 300 s) against Ansible's defaults (ANSIBLE_CONFIG
   pointing at an empty file: forks 5, no pipelining, ControlPersist 60 s), alternating, in the
   same run, each run with a fresh SSH control directory (cold connections). The gpu_health
   module runs each node's own ``sre`` against a recorded NVML session (no GPU in a container).

Usage (root, podman + runc, the image from scripts/podman-image.sh):
  .venv/bin/python benchmarks/bench_ansible.py [--nodes 8] [--runs 3] [--site-reruns 3]
      [--skip-site] [--skip-validate]
Prints a table; exit status 1 if a playbook failed or a goal was missed.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.helpers.podman_nodes import PodmanNodes, node_image, sre_node_image  # noqa: E402

FIXTURE = ROOT / "tests" / "fixtures" / "gpu" / "h100-capture.json"
SITE_SCENARIO = ROOT / "molecule" / "site" / "molecule.yml"
RECAP = re.compile(
    r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M
)


def playbook(
    inventory: Path,
    path: Path,
    config: Path,
    work: Path,
    extra: list[str] | None = None,
    profile: bool = False,
    env_extra: dict[str, str] | None = None,
) -> tuple[float, dict[str, int], str]:
    """Run ansible-playbook; return (seconds, totals from PLAY RECAP, output tail). With
    ``profile``, ansible.posix.profile_tasks adds its slowest-tasks list to the output."""
    control = Path(tempfile.mkdtemp(prefix="cp-", dir=work))
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(config),
        "ANSIBLE_SSH_CONTROL_PATH_DIR": str(control),  # cold: no master from an earlier run
        "ANSIBLE_CACHE_PLUGIN_CONNECTION": str(work / "facts"),
        "ANSIBLE_NOCOLOR": "1",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    env.pop("ANSIBLE_HOST_KEY_CHECKING", None)  # verified keys, whatever the caller set
    env.update(env_extra or {})
    if profile:
        env["ANSIBLE_CALLBACKS_ENABLED"] = "ansible.posix.profile_tasks"
        env["PROFILE_TASKS_TASK_OUTPUT_LIMIT"] = "15"
    argv = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(inventory), str(path)]
    start = time.perf_counter()
    proc = subprocess.run(
        [*argv, *(extra or [])],
        capture_output=True,
        text=True,
        env=env,
        cwd=work,
        timeout=3600,
        check=False,
    )
    seconds = time.perf_counter() - start
    totals = {
        "ok": 0,
        "changed": 0,
        "unreachable": 0,
        "failed": 0,
        "hosts": 0,
        "rc": proc.returncode,
    }
    for m in RECAP.finditer(proc.stdout):
        totals["hosts"] += 1
        for key, value in zip(
            ("ok", "changed", "unreachable", "failed"), m.groups()[1:], strict=True
        ):
            totals[key] += int(value)
    return seconds, totals, (proc.stdout + proc.stderr)[-6000:]


def slowest_tasks(output: str) -> list[str]:
    """The lines of profile_tasks' closing list (``role : task --- 1.23s``), slowest first."""
    return [line.strip() for line in output.splitlines() if re.search(r" -{3,} +[\d.]+s$", line)]


def bench_validate(nodes: int, runs: int, work: Path) -> list[list[Any]]:
    empty = work / "empty.cfg"
    empty.write_text("")
    shipped = ROOT / "ansible.cfg"
    with PodmanNodes(
        nodes, work / "validate", prefix="sre-bench-", image=sre_node_image(work)
    ) as fleet:
        for node in fleet.nodes:
            fleet.exec(node, "mkdir", "-p", "/srv/recordings")
            subprocess.run(
                ["podman", "cp", str(FIXTURE), f"{node.name}:/srv/recordings/gpu.json"],
                check=True,
                timeout=60,
            )
        inv = fleet.inventory(
            work / "validate.yml", group_vars={"gpu_health_replay": "/srv/recordings/gpu.json"}
        )
        times: dict[str, list[float]] = {"shipped": [], "defaults": []}
        for _ in range(runs):
            for name, cfg in (("shipped", shipped), ("defaults", empty)):
                seconds, totals, tail = playbook(
                    inv, ROOT / "playbooks" / "validate.yml", cfg, work
                )
                if totals["rc"] != 0 or totals["hosts"] != nodes:
                    raise SystemExit(f"validate.yml with {name} config failed:\n{tail}")
                times[name].append(seconds)
    ship, dflt = statistics.median(times["shipped"]), statistics.median(times["defaults"])
    spread = {k: f"{min(v):.1f}-{max(v):.1f}" for k, v in times.items()}
    return [
        [
            f"validate.yml, {nodes} nodes, shipped ansible.cfg",
            f"{ship:.1f}",
            spread["shipped"],
            "-",
        ],
        [f"validate.yml, {nodes} nodes, Ansible defaults", f"{dflt:.1f}", spread["defaults"], "-"],
        ["validate.yml: defaults / shipped", f"{dflt / ship:.2f}x", "-", "> 1"],
    ]


def bench_site(work: Path, reruns_wanted: int = 3) -> tuple[list[list[Any]], bool]:
    scenario = yaml.safe_load(SITE_SCENARIO.read_text())
    site_vars: dict[str, Any] = dict(scenario["provisioner"]["inventory"]["group_vars"]["all"])
    site_vars["sre_site_repo_root"] = str(ROOT)
    with PodmanNodes(1, work / "site", prefix="sre-bench-site-", image=node_image()) as fleet:
        inv = fleet.inventory(work / "site.yml", group_vars=site_vars)
        cfg = ROOT / "ansible.cfg"
        # The molecule prepare playbook: waits for systemd, unpacks the fixture apt repository.
        seconds, totals, tail = playbook(inv, ROOT / "molecule" / "prepare.yml", cfg, work)
        if totals["rc"] != 0:
            return [["site.yml: prepare", f"{seconds:.1f}", "failed", tail.splitlines()[-1]]], False
        first, totals1, tail1 = playbook(inv, ROOT / "playbooks" / "site.yml", cfg, work)
        rows = [
            [
                "site.yml: first converge, 1 node",
                f"{first:.1f}",
                f"changed={totals1['changed']}",
                "-",
            ]
        ]
        if totals1["rc"] != 0:
            print(tail1, file=sys.stderr)
            rows[0][2] = f"FAILED rc={totals1['rc']}"
            return rows, False
        variants: list[tuple[str, dict[str, str], str]] = [
            ("shipped ansible.cfg (sre_linear, mitogen)", {}, "< 60 s, changed=0"),
            ("ANSIBLE_STRATEGY=linear (plain SSH)", {"ANSIBLE_STRATEGY": "linear"}, "reference"),
        ]
        ok = True
        for label, env_extra, goal in variants:
            reruns: list[float] = []
            worst: dict[str, int] = {"changed": 0, "ok": 0, "rc": 0}
            for i in range(reruns_wanted):
                again, totals2, tail2 = playbook(
                    inv,
                    ROOT / "playbooks" / "site.yml",
                    cfg,
                    work,
                    profile=i == reruns_wanted - 1,
                    env_extra=env_extra,
                )
                reruns.append(again)
                worst = {k: max(worst[k], totals2[k]) for k in worst}
                if totals2["rc"] != 0 or totals2["changed"] != 0:
                    print(tail2, file=sys.stderr)
                    break
            median = statistics.median(reruns)
            ok = ok and worst["rc"] == 0 and worst["changed"] == 0
            if goal != "reference":
                ok = ok and median < 60
            print(f"slowest tasks of the last re-run, {label} (profile_tasks):")
            for line in slowest_tasks(tail2):
                print(f"  {line}")
            rows.append(
                [
                    f"site.yml: idempotent re-run, 1 node, {label} (median of {len(reruns)})",
                    f"{median:.1f}",
                    f"changed={worst['changed']} ok={worst['ok']} rc={worst['rc']} "
                    f"({min(reruns):.1f}-{max(reruns):.1f} s)",
                    goal,
                ]
            )
        check, totals3, tail3 = playbook(
            inv, ROOT / "playbooks" / "site.yml", cfg, work, extra=["--check"]
        )
        if totals3["rc"] != 0 or totals3["changed"] != 0:
            print(tail3, file=sys.stderr)
            ok = False
        rows.append(
            [
                "site.yml --check on the converged node, shipped ansible.cfg",
                f"{check:.1f}",
                f"changed={totals3['changed']} ok={totals3['ok']} rc={totals3['rc']}",
                "changed=0",
            ]
        )
        return rows, ok


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--nodes", type=int, default=8)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--site-reruns", type=int, default=3, help="re-runs of site.yml timed")
    parser.add_argument("--skip-site", action="store_true")
    parser.add_argument("--skip-validate", action="store_true")
    args = parser.parse_args()
    rows: list[list[Any]] = []
    ok = True
    with tempfile.TemporaryDirectory(prefix="sre-bench-ansible-") as tmp:
        work = Path(tmp)
        if not args.skip_site:
            site_rows, ok = bench_site(work, max(1, args.site_reruns))
            rows += site_rows
        if not args.skip_validate:
            rows += bench_validate(args.nodes, args.runs, work)
    widths = [
        max(len(str(r[i])) for r in [["benchmark", "seconds", "detail", "goal"], *rows])
        for i in range(4)
    ]
    for row in [["benchmark", "seconds", "detail", "goal"], *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))
    print(f"(median of {args.runs} runs for validate; {os.cpu_count()} CPUs)")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
