"""Earlier releases of buildtail, taken from the repository's own history, for upgrade tests.

A release's tree is ``git archive`` of its commit, run with this checkout's interpreter and
libraries (``python -m daemon`` from that tree). Where the history is not there (a shallow clone,
an exported tarball) the tests that need a release skip.
"""

from __future__ import annotations

import shutil
import subprocess
import tarfile
from io import BytesIO
from pathlib import Path

__all__ = ["RELEASES", "release_tree"]

REPO = Path(__file__).resolve().parents[1]

# Every release so far: the commit its version was cut from.
RELEASES = {
    "0.1.0": "3d421cbf1a9c336c55e841b1bc57222f9a00daee",
    "0.2.0": "e8c4a229f93fe9b71d5f5de0a629683ac6aa343d",
}


def release_tree(version: str, dest: Path) -> Path | None:
    """The release's source tree under ``dest`` (made on first use), or None without the history."""
    tree = dest / f"buildtail-{version}"
    if (tree / "daemon" / "__main__.py").is_file():
        return tree
    git = shutil.which("git")
    if git is None:
        return None
    archive = subprocess.run(
        [git, "-C", str(REPO), "archive", "--format=tar", RELEASES[version]],
        capture_output=True,
        check=False,
    )
    if archive.returncode != 0:
        return None
    tree.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=BytesIO(archive.stdout)) as tar:
        tar.extractall(tree, filter="data")
    return tree
