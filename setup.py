"""Build hooks that pyproject.toml cannot express.

- The `.metal` sources, the emulator's C++ headers, the NVIDIA lane's CUDA shim, the Objective-C++ bridge's source
  and the repeated call's C++ host path live at the top of the repository (metal/, csrc/emu/, csrc/cuda/, csrc/mps/,
  csrc/host/);
  build_py copies them into the package as mpskernels/_data/ so an installed package carries them.
- Nothing is compiled at install time, on any platform (see the note above setup()).
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
SHIPPED = {"metal": ROOT / "metal", "csrc/emu": ROOT / "csrc" / "emu", "csrc/cuda": ROOT / "csrc" / "cuda",
           "csrc/mps": ROOT / "csrc" / "mps",
           "csrc/host": ROOT / "csrc" / "host"}  # built at first use (src/mpskernels/cxx_host.py)
NOT_SHIPPED = {
    # Declaration-only stand-ins for Apple's headers, for the bridge's syntax check on Linux (never shipped: on a Mac
    # they would shadow the real headers).
    "csrc/mps": ("check",),
}


class BuildPyWithData(build_py):
    def run(self):
        super().run()
        data = Path(self.build_lib) / "mpskernels" / "_data"
        for name, source in SHIPPED.items():
            target = data / name
            if target.exists():
                shutil.rmtree(target)
            ignore = shutil.ignore_patterns("__pycache__", "*.pyc", *NOT_SHIPPED.get(name, ()))
            shutil.copytree(source, target, ignore=ignore)


# No compiled extension at install time. The Objective-C++ bridge must be compiled against the torch that runs it,
# and a build-isolated install would compile it against whatever torch the build environment fetched (and would
# fetch a whole torch for every install on a Mac just for that). mpskernels compiles it at first use instead
# (src/mpskernels/runtime/bridge_build.py), so the source ships as data and the wheel stays pure Python.
setup(cmdclass={"build_py": BuildPyWithData})
