"""Where the anchors' Metal sources are read from: the installed torch, and the `mlx-metal` macOS wheel.

Nothing of theirs is copied into this repository. PyTorch ships its MPS kernel headers inside every torch wheel,
Linux ones included (`torch/include/ATen/native/mps/kernels/*.h`, `torch/include/c10/metal/*.h`). MLX ships its
kernel headers only inside the `mlx-metal` wheel, which is built for macOS but is a plain zip: pip downloads it on
any platform, and we unpack its `mlx/include` folder into the user cache once.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import platformdirs

MLX_METAL_VERSION = "0.32.4"
MLX_KERNELS = Path("mlx") / "backend" / "metal" / "kernels"


class AnchorSourceError(RuntimeError):
    """An anchor's Metal sources cannot be found or downloaded."""


def anchor_cache_dir() -> Path:
    """MPSKERNELS_ANCHOR_CACHE overrides the per-user cache folder (CI keeps it inside its checkout)."""
    override = os.environ.get("MPSKERNELS_ANCHOR_CACHE")
    path = Path(override) if override else Path(platformdirs.user_cache_dir("mpskernels")) / "anchors"
    path.mkdir(parents=True, exist_ok=True)
    return path


def torch_include_dir() -> Path:
    """The installed torch's include folder, which holds ATen/native/mps/kernels and c10/metal.

    MPSKERNELS_TORCH_METAL_INCLUDE points elsewhere (the NVIDIA lane carries torch 2.13's headers to a machine
    whose own torch is another version)."""
    override = os.environ.get("MPSKERNELS_TORCH_METAL_INCLUDE")
    if override:
        path = Path(override)
    else:
        import torch

        path = Path(torch.__file__).resolve().parent / "include"
    if not (path / "ATen" / "native" / "mps" / "kernels").is_dir():
        raise AnchorSourceError(f"PyTorch's Metal kernel headers are not in {path} (ATen/native/mps/kernels)")
    return path


def mlx_include_dir(version: str = MLX_METAL_VERSION) -> Path:
    """The include root of MLX's kernel headers (`<root>/mlx/backend/metal/kernels/*.h`), downloading the
    `mlx-metal` wheel of `version` with pip on first use."""
    root = anchor_cache_dir() / f"mlx-metal-{version}"
    if (root / MLX_KERNELS / "utils.h").is_file():
        return root
    wheel = _download_mlx_wheel(version)
    _unpack_include(wheel, root)
    return root


def _download_mlx_wheel(version: str) -> Path:
    wheels = anchor_cache_dir() / "wheels"
    wheels.mkdir(exist_ok=True)
    found = sorted(wheels.glob(f"mlx_metal-{version}-*.whl"))
    if found:
        return found[0]
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--platform", "macosx_14_0_arm64", "--dest", str(wheels), f"mlx-metal=={version}"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True)
    found = sorted(wheels.glob(f"mlx_metal-{version}-*.whl"))
    if proc.returncode != 0 or not found:
        raise AnchorSourceError(
            f"could not download mlx-metal=={version} (MLX's Metal kernel headers) with pip:\n{proc.stderr.strip()}")
    return found[0]


def _unpack_include(wheel: Path, root: Path) -> None:
    """Extracts only the wheel's `mlx/include/` tree into root, atomically: a half-unpacked folder never shows."""
    prefix = "mlx/include/"
    staging = Path(tempfile.mkdtemp(prefix="unpack-", dir=anchor_cache_dir()))
    try:
        with zipfile.ZipFile(wheel) as zf:
            names = [n for n in zf.namelist() if n.startswith(prefix) and not n.endswith("/")]
            if not names:
                raise AnchorSourceError(f"{wheel.name} holds no {prefix} folder")
            for name in names:
                target = staging / name[len(prefix):]
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(name) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst)
        if not root.exists():
            os.replace(staging, root)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
