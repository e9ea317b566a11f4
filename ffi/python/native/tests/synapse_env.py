"""Makes, or reuses, the Python environment Synapse's tests run in, under TARGET (cargo's target dir).

    python3 synapse_env.py TARGET

- TARGET/synapse-venv: a virtualenv with matrix-synapse[test] 1.163.2 installed from wheels;
- TARGET/synapse-src/matrix_synapse-1.163.2: Synapse's source distribution, unpacked (its ``tests``
  package is run, never copied into roomgraph), checked against its published SHA-256.

Both are reused once complete. Prints one JSON line: {"python": ..., "src": ...}. Any failure
(no network, no venv module) exits non-zero with the reason.
"""

import hashlib
import json
import os
import re
import subprocess
import sys
import tarfile
import urllib.parse
import urllib.request
from pathlib import Path

SYNAPSE = "1.163.2"
SDIST = f"matrix_synapse-{SYNAPSE}.tar.gz"
SDIST_SHA256 = "4583f1cb8ae6e257c67b752148c3f5ec16ccf7d6cc5d8375d88a14ac20f8effe"


def venv(target: Path) -> Path:
    root = target / "synapse-venv"
    python = root / "bin" / "python"
    ready = root / f".ready-{SYNAPSE}"
    if ready.exists():
        return python
    subprocess.run([sys.executable, "-m", "venv", str(root)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--only-binary", ":all:",
         f"matrix-synapse[test]=={SYNAPSE}"],
        check=True,
    )
    ready.touch()
    return python


def sdist(target: Path) -> Path:
    root = target / "synapse-src"
    src = root / f"matrix_synapse-{SYNAPSE}"
    if (src / "tests" / "state" / "test_v2.py").exists():
        return src
    root.mkdir(parents=True, exist_ok=True)
    archive = root / SDIST
    if not archive.exists() or hashlib.sha256(archive.read_bytes()).hexdigest() != SDIST_SHA256:
        index = os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple").rstrip("/") + "/"
        page_url = urllib.parse.urljoin(index, "matrix-synapse/")
        request = urllib.request.Request(page_url, headers={"Accept": "text/html"})
        page = urllib.request.urlopen(request, timeout=120).read().decode()
        links = [h for h in re.findall(r'href="([^"]+)"', page) if SDIST in h]
        if not links:
            raise SystemExit(f"{SDIST} not listed at {page_url}")
        url = urllib.parse.urljoin(page_url, links[0].replace("&amp;", "&").split("#")[0])
        data = urllib.request.urlopen(url, timeout=300).read()
        if hashlib.sha256(data).hexdigest() != SDIST_SHA256:
            raise SystemExit(f"{url}: SHA-256 mismatch")
        archive.write_bytes(data)
    with tarfile.open(archive) as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(root, filter="data")
        else:  # Python < 3.11.4; the archive's hash was checked
            tar.extractall(root)
    return src


def main() -> None:
    target = Path(sys.argv[1]).resolve()
    python = venv(target)
    src = sdist(target)
    print(json.dumps({"python": str(python), "src": str(src)}))


if __name__ == "__main__":
    main()
