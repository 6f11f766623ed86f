"""Build hooks that pyproject.toml cannot express.

- The `.metal` sources, the emulator's C++ headers and the NVIDIA lane's CUDA shim live at the top of the
  repository (metal/, csrc/emu/, csrc/cuda/);
  build_py copies them into the package as mpskernels/_data/ so an installed package carries them.
- The Objective-C++ bridge (csrc/mps/bridge.mm) is built on macOS only, and is optional: if it fails to build,
  the install goes on and mpskernels uses torch.mps.compile_shader instead. A Linux install compiles nothing.
"""

import shutil
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
SHIPPED = {"metal": ROOT / "metal", "csrc/emu": ROOT / "csrc" / "emu", "csrc/cuda": ROOT / "csrc" / "cuda",
           "csrc/launch_key": ROOT / "csrc" / "launch_key"}  # built at first use (src/mpskernels/launch_key.py)


class BuildPyWithData(build_py):
    def run(self):
        super().run()
        data = Path(self.build_lib) / "mpskernels" / "_data"
        for name, source in SHIPPED.items():
            target = data / name
            if target.exists():
                shutil.rmtree(target)
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


def macos_bridge():
    """The bridge extension and its build command, or nothing off macOS."""
    if sys.platform != "darwin":
        return [], {}
    from torch.utils.cpp_extension import BuildExtension, CppExtension

    class OptionalBuildExtension(BuildExtension):
        def run(self):
            try:
                super().run()
            except Exception as e:  # no Xcode command-line tools, or a torch built without MPS
                print(f"mpskernels: not building the Objective-C++ bridge ({e}); compile_shader will be used")

    bridge = CppExtension(
        "mpskernels._mps_bridge",
        ["csrc/mps/bridge.mm"],
        extra_compile_args=["-std=c++17", "-fobjc-arc"],
        extra_link_args=["-framework", "Metal", "-framework", "Foundation"],
    )
    return [bridge], {"build_ext": OptionalBuildExtension}


extensions, commands = macos_bridge()
setup(cmdclass={"build_py": BuildPyWithData, **commands}, ext_modules=extensions)
