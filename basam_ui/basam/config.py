"""The BA-SAM setting: which of NSF and BM-AM are on, and the BM-AM slope."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..vocabulary import DEFAULT_BETA, PATCH, PRESETS

N_TRAIN = 4096  # tokens SAM was trained on: a 64x64 grid of 16-px patches at 1024 px


@dataclass(frozen=True)
class BASAMConfig:
    """NSF (new scaling factor) and BM-AM (bias-mode attention mask, slope `beta`).

    Frozen and hashable, so it can key caches. `BASAMConfig.vanilla()` is plain SAM.
    """

    nsf: bool = True
    bmam: bool = True
    beta: float = 0.1

    def __post_init__(self) -> None:
        if isinstance(self.beta, bool) or not isinstance(self.beta, (int, float)):
            raise ValueError(f"beta must be a number, got {type(self.beta).__name__}")
        if not math.isfinite(self.beta):
            raise ValueError(f"beta must be finite, got {self.beta}")
        if self.beta < 0:
            raise ValueError(f"beta must be >= 0, got {self.beta}")
        object.__setattr__(self, "beta", float(self.beta))

    @classmethod
    def vanilla(cls) -> "BASAMConfig":
        """Both changes off: the unmodified SAM attention."""
        return cls(nsf=False, bmam=False, beta=0.0)

    @classmethod
    def preset(cls, name: str, beta: float = DEFAULT_BETA) -> "BASAMConfig":
        """A named setting of `vocabulary.PRESETS` ("vanilla", "basam", "nsf", "bmam") with
        slope `beta` (vanilla: `vanilla()`), as precompute and eval make them; ValueError for
        another name."""
        if name not in PRESETS:
            raise ValueError(f"settings must be among {', '.join(PRESETS)}, got {name!r}")
        nsf, bmam = PRESETS[name]
        if not (nsf or bmam):
            return cls.vanilla()
        # without BM-AM the slope does nothing: 0, as the app's settings make it, so that the
        # embeddings precompute stores for NSF only are the ones the page asks for
        return cls(nsf=nsf, bmam=bmam, beta=beta if bmam else 0.0)

    @property
    def is_vanilla(self) -> bool:
        return not self.nsf and (not self.bmam or self.beta == 0.0)

    @property
    def slope(self) -> float:
        """The BM-AM slope actually applied (0 when BM-AM is off)."""
        return self.beta if self.bmam else 0.0

    def label(self) -> str:
        """Short human-readable name, e.g. 'BA-SAM (NSF, BM-AM beta=0.1)'."""
        if self.is_vanilla:
            return "SAM (vanilla)"
        parts = (["NSF"] if self.nsf else []) + ([f"BM-AM beta={self.beta:g}"] if self.bmam else [])
        return f"BA-SAM ({', '.join(parts)})"


def length_scale(size: int) -> float:
    """NSF's length term ln N / ln N_train for encoder input size S, N = (S/16)^2."""
    n = (size // PATCH) ** 2
    return math.log(n) / math.log(N_TRAIN)
