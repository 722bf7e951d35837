"""Build a node_exporter release-style tarball from Debian's real binary, for the molecule test.

GitHub releases cannot be reached from CI, so the ``binary`` install path is tested with
``node_exporter-<version>.linux-amd64.tar.gz`` laid out like upstream's (one directory holding
``node_exporter``), made from Debian's ``prometheus-node-exporter`` package (the same program,
Debian's build). Prints ``PATH SHA256``; an existing tarball is reused.

Usage: python3 node_exporter_tarball.py CACHE_DIR
"""

from __future__ import annotations

import hashlib
import io
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

PACKAGE = "prometheus-node-exporter"
TIMEOUT = 300


def build(cache: Path) -> Path:
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        work = Path(tmp)
        subprocess.run(
            ["apt-get", "download", PACKAGE],
            cwd=work,
            check=True,
            capture_output=True,
            timeout=TIMEOUT,
        )
        deb = next(work.glob(f"{PACKAGE}_*.deb"))
        version = deb.name.split("_")[1].split("-")[0].split(":")[-1]
        subprocess.run(
            ["dpkg-deb", "-x", str(deb), str(work / "root")], check=True, timeout=TIMEOUT
        )
        binary = (work / "root" / "usr" / "bin" / PACKAGE).read_bytes()
        top = f"node_exporter-{version}.linux-amd64"
        out = cache / f"{top}.tar.gz"
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            info = tarfile.TarInfo(f"{top}/node_exporter")
            info.size, info.mode, info.mtime = len(binary), 0o755, 315532800
            tar.addfile(info, io.BytesIO(binary))
        out.write_bytes(buf.getvalue())
        return out


def main() -> int:
    cache = Path(sys.argv[1])
    existing = sorted(cache.glob("node_exporter-*.linux-amd64.tar.gz"))
    tarball = existing[-1] if existing else build(cache)
    print(tarball, hashlib.sha256(tarball.read_bytes()).hexdigest())
    return 0


if __name__ == "__main__":
    sys.exit(main())
