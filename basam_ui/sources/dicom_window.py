"""Display windows for monochrome DICOM images: how modality values (stored values after the
Modality LUT) become the 8-bit grey levels the model sees (PS3.3 C.11.2, the VOI LUT).

A `Window` is one of: a centre/width pair with a VOI LUT Function (LINEAR, LINEAR_EXACT or
SIGMOID; the file's presets or typed), an item of the file's VOI LUT Sequence, "auto" (the
0.5-99.5 percentiles of the image's modality values) or "full range" (every value the stored
bits can hold, through the Modality LUT). `Window.key()` is its stable text form (what makes
the pixels, for cache keys and provenance); `Window.parse` reads a key back.

The three functions are computed here straight into 0..255 in float32 (pydicom's
`apply_windowing` outputs the stored values' range in float64 and takes its parameters only
from a dataset); LUT table look-ups (VOI LUT and Modality LUT Sequences) are pydicom's.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Optional

import numpy as np

WINDOW_FUNCTIONS = ("LINEAR", "LINEAR_EXACT", "SIGMOID")  # VOI LUT Function (0028,1056)
VALUES, VOI_LUT, AUTO, FULL_RANGE = "values", "voi-lut", "auto", "full range"  # Window.mode
AUTO_PERCENTILES = (0.5, 99.5)  # the automatic window spans these percentiles of the values


@dataclass(frozen=True)
class Window:
    """One way to window a monochrome image.

    center, width: in modality units (mode "values"; for "auto" and "full range", what they
      resolved to, when known).
    function: the VOI LUT Function, one of WINDOW_FUNCTIONS.
    name: what the page calls it: the file's Window Center & Width Explanation or LUT
      Explanation, "auto", "full range", or "" for a typed window. Not part of `key()`.
    mode: "values", "voi-lut" (the file's VOI LUT Sequence item `lut`), "auto", "full range".
    """

    center: Optional[float] = None
    width: Optional[float] = None
    function: str = "LINEAR"
    name: str = ""
    mode: str = VALUES
    lut: Optional[int] = None

    def __post_init__(self) -> None:
        if self.mode not in (VALUES, VOI_LUT, AUTO, FULL_RANGE):
            raise ValueError(f"window mode must be one of values, voi-lut, auto, full range, got {self.mode!r}")
        if self.function not in WINDOW_FUNCTIONS:
            raise ValueError(f"window function must be one of {', '.join(WINDOW_FUNCTIONS)}, got {self.function!r}")
        if self.mode == VOI_LUT and (self.lut is None or self.lut < 0):
            raise ValueError("a VOI LUT window needs the index of the file's VOI LUT Sequence item")
        if self.mode == VALUES:
            if self.center is None or self.width is None or not np.isfinite([self.center, self.width]).all():
                raise ValueError("a window needs a finite centre and width")
            if self.width < (1 if self.function == "LINEAR" else 0) or self.width == 0:
                raise ValueError(
                    f"window width must be at least 1 for LINEAR and above 0 otherwise, got {self.width:g}"
                )

    @classmethod
    def auto(cls) -> "Window":
        return cls(name=AUTO, mode=AUTO, function="LINEAR_EXACT")

    @classmethod
    def full_range(cls) -> "Window":
        return cls(name=FULL_RANGE, mode=FULL_RANGE, function="LINEAR_EXACT")

    def key(self) -> str:
        """The stable text form of what this window does to pixels: "linear:40:400",
        "linear_exact:...", "sigmoid:...", "voi-lut:0" (0-based item), "auto:0.5-99.5",
        "full". Names are left out; an auto or full window's key does not depend on the image."""
        if self.mode == VALUES:
            return f"{self.function.lower()}:{self.center:.10g}:{self.width:.10g}"
        if self.mode == VOI_LUT:
            return f"{VOI_LUT}:{self.lut}"
        if self.mode == AUTO:
            return f"auto:{AUTO_PERCENTILES[0]:g}-{AUTO_PERCENTILES[1]:g}"
        return "full"

    @classmethod
    def parse(cls, text: str) -> "Window":
        """The window a `key()` (or "auto", "full range", "full") names; ValueError otherwise."""
        word = str(text).strip().lower()
        if word == AUTO or word == Window.auto().key():
            return cls.auto()
        if word in ("full", FULL_RANGE):
            return cls.full_range()
        parts = word.split(":")
        try:
            if parts[0] == VOI_LUT and len(parts) == 2:
                return cls(name=f"VOI LUT {int(parts[1]) + 1}", mode=VOI_LUT, lut=int(parts[1]))
            if parts[0].upper() in WINDOW_FUNCTIONS and len(parts) == 3:
                return cls(float(parts[1]), float(parts[2]), parts[0].upper())
        except ValueError as e:
            if "window" in str(e):
                raise
        raise ValueError(
            f"not a window: {text!r} (expected e.g. 'linear:40:400', 'sigmoid:40:400', 'voi-lut:0', 'auto' or 'full')"
        )

    def label(self) -> str:
        """What a page shows: "STANDARD (C 30000, W 40000)", "auto (0.5-99.5 percentiles)"."""
        if self.mode == VALUES:
            function = "" if self.function == "LINEAR" else f", {self.function}"
            values = f"C {self.center:.6g}, W {self.width:.6g}{function}"
            return f"{self.name} ({values})" if self.name else values
        if self.mode == AUTO:
            return f"auto ({AUTO_PERCENTILES[0]:g}-{AUTO_PERCENTILES[1]:g} percentiles)"
        return self.name or self.key()

    def record(self) -> dict[str, Any]:
        """The window as provenance records it: key, name, function, and the centre and width
        (for auto and full range, those they resolved to; None until resolved)."""
        return {
            "key": self.key(), "name": self.name, "function": self.function, "center": self.center, "width": self.width
        }


def file_windows(header: Any) -> list[Window]:
    """The windows a (frame's) header offers, in the file's order: its Window Center/Width
    pairs (with their VOI LUT Function and explanations), then its VOI LUT Sequence items.
    Presets a window cannot use (a width under 1 for LINEAR, say) are left out."""
    found: list[Window] = []
    centers, widths = _values(header.get("WindowCenter")), _values(header.get("WindowWidth"))
    names = [str(n) for n in _values(header.get("WindowCenterWidthExplanation"))]
    function = str(header.get("VOILUTFunction", "LINEAR") or "LINEAR").upper()
    function = function if function in WINDOW_FUNCTIONS else "LINEAR"
    for i, (center, width) in enumerate(zip(centers, widths)):
        try:
            found.append(Window(float(center), float(width), function, names[i] if i < len(names) else ""))
        except (TypeError, ValueError):
            continue
    for i, item in enumerate(header.get("VOILUTSequence") or ()):
        explanation = str(item.get("LUTExplanation", "") or "")
        found.append(Window(name=explanation or f"VOI LUT {i + 1}", mode=VOI_LUT, lut=i))
    return found


def _values(value: Any) -> list:
    """An attribute's values as a list (pydicom gives one value bare, several as a MultiValue)."""
    if value is None:
        return []
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        return [value]
    return list(value)


def modality_values(stored: np.ndarray, header: Any) -> np.ndarray:
    """Stored values through the Modality LUT: Rescale Slope/Intercept (in float32) or the
    Modality LUT Sequence (pydicom's look-up); float32."""
    if header.get("ModalityLUTSequence"):
        from pydicom.pixels import apply_modality_lut

        return apply_modality_lut(stored, header).astype(np.float32)
    values = stored.astype(np.float32)
    slope, intercept = float(header.get("RescaleSlope", 1) or 1), float(header.get("RescaleIntercept", 0) or 0)
    if slope != 1:
        values *= np.float32(slope)
    if intercept != 0:
        values += np.float32(intercept)
    return values


def resolve(window: Window, values: np.ndarray, header: Any) -> Window:
    """An auto or full-range window as the LINEAR_EXACT centre/width it means for these
    modality values; other windows unchanged."""
    if window.mode == AUTO:
        low, high = np.percentile(values, AUTO_PERCENTILES)
    elif window.mode == FULL_RANGE:
        low, high = full_range(values, header)
    else:
        return window
    low, high = float(low), float(high)
    width = high - low if high > low else max(abs(high), 1.0) * 1e-6  # a flat image: any tiny width
    return replace(window, center=(low + high) / 2, width=width)


def full_range(values: np.ndarray, header: Any) -> tuple[float, float]:
    """The lowest and highest modality values the header allows: Bits Stored and Pixel
    Representation through the rescale, or the Modality LUT's outputs (float data: its own)."""
    if header.get("ModalityLUTSequence"):
        from pydicom.pixels import apply_modality_lut

        item = header.ModalityLUTSequence[0]
        entries = np.arange(int(item.LUTDescriptor[0] or 65536)) + int(item.LUTDescriptor[1])
        outputs = apply_modality_lut(entries, header)
        return float(outputs.min()), float(outputs.max())
    bits = header.get("BitsStored")
    if not bits:  # float pixel data (parametric maps) have no Bits Stored: their own extent
        return float(values.min()), float(values.max())
    if int(header.get("PixelRepresentation", 0) or 0):
        low, high = -(2 ** (int(bits) - 1)), 2 ** (int(bits) - 1) - 1
    else:
        low, high = 0, 2 ** int(bits) - 1
    slope, intercept = float(header.get("RescaleSlope", 1) or 1), float(header.get("RescaleIntercept", 0) or 0)
    ends = sorted((low * slope + intercept, high * slope + intercept))
    return ends[0], ends[1]


def grey_levels(values: np.ndarray, window: Window, header: Any) -> np.ndarray:
    """Modality values windowed to float32 grey levels in 0..255 (PS3.3 C.11.2.1.2 for LINEAR,
    C.11.2.1.3 for LINEAR_EXACT and SIGMOID). `window` resolved (see `resolve`), or a VOI LUT."""
    if window.mode == VOI_LUT:
        return _voi_lut(values, window.lut or 0, header)
    c, w = float(window.center), float(window.width)  # type: ignore[arg-type]
    if window.function == "SIGMOID":
        out = values - np.float32(c)
        out *= np.float32(-4.0 / w)
        with np.errstate(over="ignore"):  # exp -> inf far below the centre: 255 / inf = 0
            np.exp(out, out=out)
        out += 1
        np.divide(255.0, out, out=out)
        return out
    if window.function == "LINEAR":
        c, w = c - 0.5, w - 1.0
        if w <= 0:  # width 1: a threshold at c - 0.5
            return np.where(values > c, np.float32(255), np.float32(0))
    # (x - c) / w + 0.5, clipped to [0, 1]: the piecewise definition's three parts at once
    out = values - np.float32(c - w / 2)
    out *= np.float32(255.0 / w)
    np.clip(out, 0, 255, out=out)
    return out


def _voi_lut(values: np.ndarray, index: int, header: Any) -> np.ndarray:
    """Item `index` of the VOI LUT Sequence (pydicom's look-up), scaled from its entries' bit
    depth (LUT Descriptor's third value) to 0..255."""
    from pydicom.pixels.processing import apply_voi

    items = header.get("VOILUTSequence") or ()
    if index >= len(items):
        raise ValueError(f"the file has {len(items)} VOI LUT(s); item {index} does not exist")
    bits = int(items[index].LUTDescriptor[2]) or 16
    # pydicom looks values up by integer index; modality values are integral where a LUT applies
    looked_up = apply_voi(np.rint(values).astype(np.int64), header, index=index)
    return looked_up.astype(np.float32) * np.float32(255.0 / (2**bits - 1))


def to_uint8(levels: np.ndarray, invert: bool) -> np.ndarray:
    """0..255 float grey levels as uint8 (rounded), inverted for MONOCHROME1."""
    if invert:
        levels = np.float32(255) - levels
    return (np.clip(levels, 0, 255) + np.float32(0.5)).astype(np.uint8)
