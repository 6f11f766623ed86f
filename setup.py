"""Build hooks that pyproject.toml cannot express.

- The `.metal` sources and the emulator's C++ headers live at the top of the repository (metal/, csrc/emu/);
  build_py copies them into the package as mpskernels/_data/ so an installed package carries them.
- The Objective-C++ bridge (csrc/mps/) is built on macOS only; a Linux install compiles nothing.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
SHIPPED = {"metal": ROOT / "metal", "csrc/emu": ROOT / "csrc" / "emu"}


class BuildPyWithData(build_py):
    def run(self):
        super().run()
        data = Path(self.build_lib) / "mpskernels" / "_data"
        for name, source in SHIPPED.items():
            target = data / name
            if target.exists():
                shutil.rmtree(target)
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


setup(cmdclass={"build_py": BuildPyWithData})
