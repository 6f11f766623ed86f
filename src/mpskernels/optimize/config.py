"""What optimize() may do: a frozen, versioned, serialisable configuration."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

CONFIG_VERSION = 2  # 2 added `timing`; version 1 dicts (no timing field) are still read
READABLE_VERSIONS = (1, 2)
TIMING_MODES = ("auto", "off", "always")


def kernel_names() -> list[str]:
    """The kernel names optimize() swaps in: the ops, and the Conv + BatchNorm fold."""
    from ..kernels import FAMILIES

    return sorted({f.name for f in FAMILIES} | {"fold_conv_batchnorm"})


def is_kernel_name(name: str) -> bool:
    return name in kernel_names() or (name.startswith("pack:") and len(name) > 5)


@dataclass(frozen=True)
class OptimizeConfig:
    """Which kernels optimize() may swap in.

    include: kernel names allowed (None: all); exclude: kernel names never used; skip: qualified module names
    (as in model.named_modules(), e.g. "layers.0.norm") left alone; tolerance_scale widens the verification
    tolerance of every dtype (1.0: the project's tolerances).

    timing: "auto" times every swap against the module it replaces where a GPU backend runs the kernels (MPS) and
    keeps only the faster (decisions are cached per machine, see docs/optimize.md); "off" keeps every correct swap
    untimed; "always" times even where a decision is cached (and on any kernel backend, the emulator included) and
    refreshes the cache.
    """

    include: frozenset[str] | None = None
    exclude: frozenset[str] = frozenset()
    skip: frozenset[str] = frozenset()
    tolerance_scale: float = 1.0
    timing: str = "auto"
    version: int = field(default=CONFIG_VERSION)

    def __post_init__(self) -> None:
        for name in ("include", "exclude", "skip"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, frozenset):
                object.__setattr__(self, name, frozenset(value))
        if self.tolerance_scale <= 0:
            raise ValueError(f"tolerance_scale must be positive, got {self.tolerance_scale}")
        if self.timing not in TIMING_MODES:
            raise ValueError(f"timing must be one of {', '.join(TIMING_MODES)}, got {self.timing!r}")
        for name in ("include", "exclude"):
            unknown = sorted(k for k in getattr(self, name) or () if not is_kernel_name(k))
            if unknown:
                raise ValueError(f"OptimizeConfig {name}: unknown kernel name(s) {', '.join(map(repr, unknown))}; "
                                 f"valid names: {', '.join(kernel_names())} (and pack:<name> for kernel packs)")

    def allows(self, kernel: str, module_name: str) -> str | None:
        """Why this config rules the swap out, or None."""
        if module_name in self.skip:
            return "skipped by config"
        for part in kernel.split("+"):  # a routed forward runs several kernels ("rope+attention")
            if part in self.exclude or (self.include is not None and part not in self.include):
                return f"kernel {part} excluded by config"
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "include": sorted(self.include) if self.include is not None else None,
            "exclude": sorted(self.exclude),
            "skip": sorted(self.skip),
            "tolerance_scale": self.tolerance_scale,
            "timing": self.timing,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "OptimizeConfig":
        version = data.get("version", CONFIG_VERSION)
        if version not in READABLE_VERSIONS:
            raise ValueError(f"OptimizeConfig version {version} is not supported (this mpskernels reads "
                             f"versions {', '.join(map(str, READABLE_VERSIONS))})")
        fields = {"version", "include", "exclude", "skip", "tolerance_scale"} | ({"timing"} if version >= 2 else set())
        unknown = set(data) - fields
        if unknown:
            raise ValueError(f"unknown OptimizeConfig field(s): {', '.join(sorted(unknown))}")
        include = data.get("include")
        return cls(
            include=frozenset(include) if include is not None else None,
            exclude=frozenset(data.get("exclude", ())),
            skip=frozenset(data.get("skip", ())),
            tolerance_scale=float(data.get("tolerance_scale", 1.0)),
            timing=str(data.get("timing", "auto")),
        )
