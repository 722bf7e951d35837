"""The three roles that write NVIDIA's CUDA repository source (nvidia_driver,
nvidia_fabricmanager, cuda_toolkit) write the same text: apt refuses a source listed twice with
different Signed-By, and differing files would flip every run."""

from __future__ import annotations

import re

import yaml

from tests.ansible.conftest import ROLES_DIR


def normalised(role: str, template: str) -> str:
    text = (ROLES_DIR / role / "templates" / template).read_text(encoding="utf-8")
    return re.sub(rf"\b(_?){role}_", r"\1ROLE_", text)


def test_cuda_repository_source_is_the_same_in_every_role() -> None:
    reference = normalised("nvidia_driver", "cuda.sources.j2")
    for role in ("nvidia_fabricmanager", "cuda_toolkit"):
        assert normalised(role, "cuda.sources.j2") == reference, role


def test_cuda_repository_files_and_key_are_the_same_in_every_role() -> None:
    names = ("keyring", "key_name", "key_fingerprint", "dir", "arch")
    seen = {}
    for role in ("nvidia_driver", "nvidia_fabricmanager", "cuda_toolkit"):
        data = yaml.safe_load(
            (ROLES_DIR / role / "vars" / "Debian.yml").read_text(encoding="utf-8")
        )
        values = {name: data[f"_{role}_cuda_repo_{name}"] for name in names}
        values["sources_file"] = data[f"_{role}_cuda_sources_file"]
        seen[role] = values
    assert seen["nvidia_fabricmanager"] == seen["nvidia_driver"]
    assert seen["cuda_toolkit"] == seen["nvidia_driver"]
