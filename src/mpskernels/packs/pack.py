"""Kernel packs: a generated kernel as data — a folder with the Metal source and `pack.json` (the launch
declaration, which module it replaces, how it was verified, and who wrote it).

    my_pack/
      kernel.metal
      pack.json     {"format": 1, "name": ..., "module": {...}, "declaration": {...},
                     "provenance": {...}, "verification": {...}}

Loading a pack reads JSON and text and checks them; it runs nothing the pack carries.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from torch import nn

from .declaration import Declaration, DeclarationError, parse_declaration
from .source_checks import SourceError, check_pack_source

FORMAT = 1
SOURCE_FILE = "kernel.metal"
MANIFEST = "pack.json"


class PackError(ValueError):
    """A pack folder that cannot be used; the message names the pack and what is wrong."""


def class_key(cls: type) -> str:
    """How a pack names the module class it replaces: 'package.module.Class'."""
    return f"{cls.__module__}.{cls.__qualname__}"


@dataclass(frozen=True)
class KernelPack:
    name: str
    source: str  # the Metal source text
    declaration: Declaration
    module_class: str  # class_key() of the module it replaces
    problem_name: str = ""  # the KernelBench problem it was generated for, if any
    problem_sha256: str = ""  # of that problem's source
    provenance: Mapping[str, Any] = field(default_factory=dict)
    verification: Mapping[str, Any] = field(default_factory=dict)
    path: Path | None = None

    @property
    def source_path(self) -> Path:
        """Where the source lies on disk (the backends compile files); written next to the manifest."""
        if self.path is None:
            raise PackError(f"pack '{self.name}' has not been saved; save() it before running it")
        return self.path / SOURCE_FILE

    def matches(self, module: nn.Module) -> bool:
        return class_key(type(module)) == self.module_class

    def make_candidate(self, reference: nn.Module, init_inputs: list) -> nn.Module:
        """A CandidateFactory for the verifier: the reference's weights, this pack's kernels, no fallback."""
        from .module import PackModule

        return PackModule(self, reference, strict=True)

    def save(self, folder: str | Path) -> "KernelPack":
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / SOURCE_FILE).write_text(self.source)
        manifest = {
            "format": FORMAT, "name": self.name,
            "module": {"class": self.module_class, "problem": self.problem_name,
                       "problem_sha256": self.problem_sha256},
            "source_sha256": sha256(self.source),
            "declaration": self.declaration.to_json(),
            "provenance": dict(self.provenance), "verification": dict(self.verification),
        }
        partial = folder / (MANIFEST + ".partial")
        partial.write_text(json.dumps(manifest, indent=2) + "\n")
        os.replace(partial, folder / MANIFEST)  # a reader never sees half a manifest
        return KernelPack(self.name, self.source, self.declaration, self.module_class, self.problem_name,
                          self.problem_sha256, self.provenance, self.verification, folder.resolve())


def load_pack(folder: str | Path) -> KernelPack:
    folder = Path(folder)
    where = f"kernel pack {folder}"
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        source = (folder / SOURCE_FILE).read_text()
    except FileNotFoundError as e:
        raise PackError(f"{where}: missing {Path(e.filename).name}") from None
    except (OSError, json.JSONDecodeError) as e:
        raise PackError(f"{where}: {e}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise PackError(f"{where}: pack.json has format {manifest.get('format') if isinstance(manifest, dict) else '?'}"
                        f", this mpskernels reads format {FORMAT}")
    if manifest.get("source_sha256") != sha256(source):
        raise PackError(f"{where}: kernel.metal does not match the hash recorded in pack.json (edited by hand?)")
    module = manifest.get("module") or {}
    try:
        declaration = parse_declaration(manifest.get("declaration"))
        check_pack_source(source, f"{folder.name}/{SOURCE_FILE}")
    except (DeclarationError, SourceError) as e:
        raise PackError(f"{where}: {e}") from None
    return KernelPack(str(manifest.get("name") or folder.name), source, declaration, str(module.get("class", "")),
                      str(module.get("problem", "")), str(module.get("problem_sha256", "")),
                      manifest.get("provenance") or {}, manifest.get("verification") or {}, folder.resolve())


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
