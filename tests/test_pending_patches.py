"""The untimed kernel variants in benches/pending must still apply to the tree, or the next lane A/B cannot stage them."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PATCHES = sorted((ROOT / "benches" / "pending").glob("*.patch"))


def _in_git_checkout() -> bool:
    if shutil.which("git") is None:
        return False
    run = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=ROOT, capture_output=True, text=True)
    return run.returncode == 0 and Path(run.stdout.strip()).resolve() == ROOT


@pytest.mark.skipif(not _in_git_checkout(), reason="needs git and a checkout of the repository")
@pytest.mark.parametrize("patch", PATCHES, ids=lambda p: p.name[:4])
def test_pending_patch_applies_to_the_tree(patch):
    run = subprocess.run(["git", "apply", "--check", str(patch)], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, f"{patch.name} no longer applies: {run.stderr}"


def test_every_pending_patch_is_described_in_the_readme():
    readme = (ROOT / "benches" / "pending" / "README.md").read_text()
    for patch in PATCHES:
        assert f"- {patch.name[:4]}," in readme, f"{patch.name} has no entry in benches/pending/README.md"
