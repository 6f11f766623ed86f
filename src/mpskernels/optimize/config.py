"""What optimize() may do: a frozen, versioned, serialisable configuration."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

CONFIG_VERSION = 1


@dataclass(frozen=True)
class OptimizeConfig:
    """Which kernels optimize() may swap in.

    include: kernel names allowed (None: all); exclude: kernel names never used; skip: qualified module names
    (as in model.named_modules(), e.g. "layers.0.norm") left alone; tolerance_scale widens the verification
    tolerance of every dtype (1.0: the project's tolerances).
    """

    include: frozenset[str] | None = None
    exclude: frozenset[str] = frozenset()
    skip: frozenset[str] = frozenset()
    tolerance_scale: float = 1.0
    version: int = field(default=CONFIG_VERSION)

    def __post_init__(self) -> None:
        for name in ("include", "exclude", "skip"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, frozenset):
                object.__setattr__(self, name, frozenset(value))
        if self.tolerance_scale <= 0:
            raise ValueError(f"tolerance_scale must be positive, got {self.tolerance_scale}")

    def allows(self, kernel: str, module_name: str) -> str | None:
        """Why this config rules the swap out, or None."""
        if module_name in self.skip:
            return "skipped by config"
        if kernel in self.exclude or (self.include is not None and kernel not in self.include):
            return f"kernel {kernel} excluded by config"
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "include": sorted(self.include) if self.include is not None else None,
            "exclude": sorted(self.exclude),
            "skip": sorted(self.skip),
            "tolerance_scale": self.tolerance_scale,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "OptimizeConfig":
        version = data.get("version", CONFIG_VERSION)
        if version != CONFIG_VERSION:
            raise ValueError(f"OptimizeConfig version {version} is not supported (this mpskernels reads "
                             f"version {CONFIG_VERSION})")
        unknown = set(data) - {"version", "include", "exclude", "skip", "tolerance_scale"}
        if unknown:
            raise ValueError(f"unknown OptimizeConfig field(s): {', '.join(sorted(unknown))}")
        include = data.get("include")
        return cls(
            include=frozenset(include) if include is not None else None,
            exclude=frozenset(data.get("exclude", ())),
            skip=frozenset(data.get("skip", ())),
            tolerance_scale=float(data.get("tolerance_scale", 1.0)),
        )
