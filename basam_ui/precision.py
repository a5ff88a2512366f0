"""Which floating-point precision the image encoder runs in.

`precision="auto"` means bf16 autocast for the image encoder where the hardware does bf16
natively: CUDA GPUs with bf16 (fp16 on older ones), and CPUs with AVX512-BF16 or AMX-BF16;
fp32 anywhere else. On such CPUs "auto" runs the prompt encoder and mask decoder in bf16
too (measured: their masks agree with fp32's on 99.59-99.61% of pixels on the shared
photos, worst mask 99.33%; see README); on CUDA they stay fp32. "fp32" and "bf16" force one
for both.
"""

from __future__ import annotations

import contextlib
from typing import ContextManager

import torch

from .vocabulary import PRECISIONS

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def cpu_has_native_bf16() -> bool:
    """True when this CPU computes in bf16 natively (AVX512-BF16 or AMX-BF16), as torch's
    run-time CPU detection reports it; False on other CPUs and older torch versions."""
    get_capabilities = getattr(getattr(torch, "cpu", None), "get_capabilities", None)
    if get_capabilities is None:
        return False
    capabilities = get_capabilities()
    return bool(capabilities.get("avx512_bf16") or capabilities.get("amx_bf16"))


def check_precision(precision: str) -> str:
    """`precision` itself; ValueError unless it is "auto", "fp32" or "bf16"."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return precision


def resolve_precision(precision: str, device: torch.device) -> str:
    """The encoder precision actually used on `device`: "fp32", "bf16" or "fp16".

    "auto": bf16 on CUDA with bf16 support (else fp16) and on CPUs with native bf16
    (`cpu_has_native_bf16`), fp32 elsewhere (MPS, other CPUs). "fp32"/"bf16" as asked.
    """
    check_precision(precision)
    device = torch.device(device)
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if device.type == "cpu" and cpu_has_native_bf16():
        return "bf16"
    return "fp32"


# Whether "auto" also runs the prompt encoder and mask decoder in bf16 where the encoder runs
# in bf16 on the CPU: only if masks agree with fp32 on >= 99.5% of pixels (mean) on the shared
# photos. Measured (`bench agreement`, 4 photos x 5 prompts, vit_t and a small ViT at 1024 and
# 2048): 99.59-99.61% mean, 99.33% worst mask, so yes.
DECODER_BF16_UNDER_AUTO = True


def resolve_decoder_precision(precision: str, encoder_precision: str, device: torch.device) -> str:
    """The prompt encoder's and mask decoder's precision: "bf16" when asked for, or under
    "auto" on a CPU whose encoder runs in bf16 if `DECODER_BF16_UNDER_AUTO`; else "fp32"
    (CUDA's "auto" keeps an fp32 decoder)."""
    check_precision(precision)
    if precision == "bf16":
        return "bf16"
    if precision == "auto" and torch.device(device).type == "cpu" and encoder_precision == "bf16":
        return "bf16" if DECODER_BF16_UNDER_AUTO else "fp32"
    return "fp32"


def autocast(resolved: str, device: torch.device) -> ContextManager:
    """Autocast context for a resolved precision on `device` (a no-op for "fp32")."""
    if resolved == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=DTYPES[resolved])
