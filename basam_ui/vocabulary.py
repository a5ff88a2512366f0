"""The words basam-ui uses, each defined once: encoder input sizes and their rule, the BA-SAM
presets, the two sides, precisions, image statuses, export formats, cache defaults, model
types. The command line, the pages, the project store, eval, precompute and the benchmarks
import them from here. Plain Python: no torch, no numpy, nothing else of basam_ui.
"""

from __future__ import annotations

from typing import Optional, Union

# -- encoder input size S ---------------------------------------------------------------

PATCH = 16  # SAM's patch size: the embedding grid is S / 16
MIN_SIZE = 256
SIZES = (1024, 1536, 2048, 3072, 4096)  # the sizes the pages offer
NATIVE = "native"  # S = the image's long side (rounded up to a multiple of 16, capped)
DEFAULT_SIZE = 1024
DEFAULT_MAX_SIZE = 4096  # --max-size: the largest S offered, and the cap of "native"
FIELD_SIZE_GPU = 2048  # a slide field's S to start with on a GPU (on a CPU: DEFAULT_SIZE)
OOM_HINT_SIZES = (512, *SIZES)  # what an out-of-memory message may suggest instead

Resolution = Union[int, str]  # an S, or NATIVE
EMBEDDING_CHANNELS = 256  # an image embedding is (1, 256, S / PATCH, S / PATCH)


def embedding_bytes(size: int, itemsize: int = 2) -> int:
    """Bytes of one image embedding at S = `size` with `itemsize`-byte values (float16: 2)."""
    return EMBEDDING_CHANNELS * (size // PATCH) ** 2 * itemsize


def is_size(size: object) -> bool:
    """The size rule: an integer S, a multiple of 16 (SAM's patch) and at least 256."""
    return not isinstance(size, bool) and hasattr(size, "__index__") and size.__index__() >= MIN_SIZE and size.__index__() % PATCH == 0


def check_size(size: object, what: str = "input size S") -> int:
    """`size` as an int; ValueError unless it follows the size rule (`is_size`).

    Arguments:
      size: the encoder input size S to check.
      what: how the message names it (e.g. "resolution").

    Returns:
      int(size).
    """
    if isinstance(size, bool) or not hasattr(size, "__index__"):
        raise ValueError(f"{what} must be an integer, got {type(size).__name__} {size!r}")
    if not is_size(size):
        raise ValueError(f"{what} must be a multiple of {PATCH} and at least {MIN_SIZE}, got {size}")
    return int(size.__index__())


def check_sizes(sizes: object, what: str = "sizes") -> list[int]:
    """Sorted distinct sizes, each following the size rule; ValueError for none or a bad one."""
    sizes = list(sizes or ())  # type: ignore[arg-type]
    bad = [s for s in sizes if not is_size(s)]
    if bad or not sizes:
        raise ValueError(f"{what} must be multiples of {PATCH} and at least {MIN_SIZE}, got {sizes}")
    return sorted({int(s) for s in sizes})


def native_size(original_size: tuple[int, int], max_size: int = DEFAULT_MAX_SIZE) -> int:
    """The "native" S of an (H, W) image: its long side rounded up to a multiple of 16, within
    [256, max_size]."""
    size = -(-max(original_size) // PATCH) * PATCH
    return max(MIN_SIZE, min(size, max_size - max_size % PATCH))


def parse_resolution(value: object, max_size: int = DEFAULT_MAX_SIZE) -> Resolution:
    """A size as the pages and the API send it ("1024", 2048, "native", "native (…)") ->
    an int S (checked, at most `max_size`) or NATIVE. Raises ValueError saying what is wrong."""
    text = str(value).strip().lower()
    if text.startswith(NATIVE):
        return NATIVE
    try:
        size = int(float(text))
    except (ValueError, OverflowError):
        raise ValueError(f"size must be one of {', '.join(map(str, SIZES))} or '{NATIVE}', got {value!r}") from None
    size = check_size(size, "size")
    if size > max_size:
        raise ValueError(f"size {size} is over this server's limit of {max_size} (--max-size)")
    return size


def size_to_try(size: int) -> Optional[int]:
    """The size an out-of-memory message at `size` suggests (the next smaller of
    OOM_HINT_SIZES), or None below them all."""
    smaller = [s for s in OOM_HINT_SIZES if s < size]
    return smaller[-1] if smaller else None


# -- the BA-SAM setting -------------------------------------------------------------------

DEFAULT_BETA = 0.1  # BM-AM slope (the paper's supplement; its ablation is flat from 0.1 to 2.5)
MAX_BETA = 2.5  # the pages' slider range is 0 .. MAX_BETA
# named settings: name -> (nsf, bmam); precompute's --settings and eval's methods
PRESETS = {"vanilla": (False, False), "basam": (True, True), "nsf": (True, False), "bmam": (False, True)}
SETTING_NAMES = tuple(PRESETS)
# eval's names for them (the `method` column of results.csv)
PRESET_LABELS = {"vanilla": "vanilla", "basam": "BA-SAM", "nsf": "NSF only", "bmam": "BM-AM only"}

# -- the two sides ----------------------------------------------------------------------

SIDES = ("sam", "basam")  # stored values (objects.side), in the pages' reading order
SIDE_LABELS = {"sam": "SAM", "basam": "BA-SAM"}  # what the pages and the API call them
DEFAULT_SIDE = "basam"


def side_key(side: str) -> str:
    """"sam"/"basam" for a side given by key or label ("SAM", "BA-SAM"); ValueError otherwise."""
    for key, label in SIDE_LABELS.items():
        if side in (key, label):
            return key
    raise ValueError(f"side must be one of {', '.join(SIDE_LABELS.values())}, got {side!r}")


# -- precision --------------------------------------------------------------------------

PRECISIONS = ("auto", "fp32", "bf16")  # what may be asked for
RUN_PRECISIONS = ("fp32", "bf16", "fp16")  # what an encoder runs in ("auto" resolved)
RECORDED_PRECISIONS = (*RUN_PRECISIONS, "auto")  # what an object's provenance may say
DEFAULT_PRECISION = "auto"
PRECISION_HELP = (
    "image encoder precision: auto (bf16 on CPUs with AVX512-BF16/AMX and on CUDA, fp32 elsewhere), "
    "fp32, or bf16 (encoder and mask decoder)"
)

# -- models -----------------------------------------------------------------------------

MODEL_TYPES = ("vit_t", "vit_b", "vit_l", "vit_h")
DEFAULT_MODEL_TYPE = "vit_t"

# -- annotation projects ----------------------------------------------------------------

STATUSES = ("todo", "in_progress", "done", "skipped", "reviewed", "needs_work")
STATUS_LABELS = {"todo": "to do", "in_progress": "in progress", "done": "done", "skipped": "skipped",
                 "reviewed": "reviewed", "needs_work": "needs work"}
OPEN_STATUSES = ("todo", "in_progress")  # what "next to do" hands out (needs work: to its annotators, first)
FINISHED_STATUSES = ("done", "reviewed")  # what exports take by default (reviewed: done, then checked)
REVIEW_DECISIONS = ("accepted", "rejected")  # a reviewer's word on an object (objects.review)
REVIEW_LABELS = {"accepted": "accepted", "rejected": "rejected"}
PROPOSAL_STATUSES = ("pending", "accepted", "rejected")  # a proposal until an annotator decides
PROPOSAL_SCORE_BANDS = (0.5, 0.8, 0.88, 0.92, 0.96)  # band edges of predicted IoU in the report
DEFAULT_OVERLAP = 0.0  # --overlap: the share of images two annotators annotate independently

# -- colours ----------------------------------------------------------------------------

# distinct colours (Tableau 10, then lighter ones): objects on the annotate page by list
# position, segments of a DICOM SEG by class position
PALETTE = (
    (78, 121, 167), (242, 142, 43), (225, 87, 89), (118, 183, 178), (89, 161, 79), (237, 201, 72),
    (176, 122, 161), (255, 157, 167), (156, 117, 95), (186, 176, 172), (31, 119, 180), (44, 160, 44),
    (214, 39, 40), (148, 103, 189), (140, 86, 75), (227, 119, 194), (188, 189, 34), (23, 190, 207),
)

# -- exports ----------------------------------------------------------------------------

DATASET_FORMATS = ("coco", "png", "yolo", "geojson", "dicom-seg")  # `basam-ui export --format`, the annotate page's export
DATASET_FORMAT_LABELS = {
    "coco": "COCO (JSON)", "png": "PNG label maps", "yolo": "YOLO-seg", "geojson": "GeoJSON (QuPath)", "dicom-seg": "DICOM SEG",
}  # fmt: skip
IMPORT_FORMATS = ("coco", "yolo", "png", "labelme")  # `basam-ui import --format`: ours, and LabelMe JSON
IMPORT_FORMAT_LABELS = {**DATASET_FORMAT_LABELS, "labelme": "LabelMe JSON (labelme, X-AnyLabeling)"}
OBJECT_SOURCES = ("clicked", "proposal", "imported")  # how an object came to be (attributes.source)
MASK_FORMATS = ("png", "rle", "polygons")  # one mask as a file (the compare page, `basam_ui.export`)
MASK_FORMAT_LABELS = {"png": "PNG", "rle": "COCO RLE (JSON)", "polygons": "Polygons (JSON)"}
MASK_FORMAT_SUFFIXES = {"png": ".png", "rle": ".rle.json", "polygons": ".polygons.json"}

# -- eval -------------------------------------------------------------------------------

PROMPT_KINDS = ("point", "center", "box")  # prompts made from a ground truth

# -- embedding cache --------------------------------------------------------------------

GB = 1 << 30
DEFAULT_CACHE_GB = 2.0  # the app's in-memory embedding cache (--cache-gb)
DEFAULT_DISK_GB = 50.0  # bound on a disk cache folder (--cache-disk-gb)


def gb_to_bytes(gb: float) -> int:
    """Gigabytes (GiB, as the options mean them) to bytes."""
    return int(float(gb) * GB)

# -- decoding in the browser --------------------------------------------------------------

# the largest S whose embedding goes to the browser (fp16: 2 MiB per side at 1024, 8 MiB at
# 2048, 32 MiB at 4096); above it the server decodes the clicks
BROWSER_DECODE_MAX_SIZE = 2048
# where a click's masks are decoded (--decode): "auto" in the browser when it can (S up to
# BROWSER_DECODE_MAX_SIZE, the decoder exported, WebAssembly there), else on the server;
# "browser" the same without the size bound; "server" always on the server
DECODE_MODES = ("auto", "browser", "server")
DEFAULT_DECODE = "auto"
