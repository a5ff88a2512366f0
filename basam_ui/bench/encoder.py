"""`basam-ui bench encoder`: the image encoder, stock vs ours vanilla vs ours BA-SAM.

Each encoder case (model, size, variant) runs in a fresh Python subprocess, so its peak
memory is its own: peak RSS on the CPU (VmHWM, reset after the model is loaded), or
`torch.cuda.max_memory_allocated` on CUDA. Time is the median of --repeats runs.
Progress goes to stderr, the tables to stdout.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import Optional

from . import VARIANTS

VIT_SHAPES = {"vit_b": (12, 768), "vit_l": (16, 1024), "vit_h": (16, 1280)}  # heads, width
MEMORY_FRACTION = 0.7  # run the stock encoder only when its estimate fits in this share


@dataclass
class CaseResult:
    """One row of the table: median seconds and peak bytes, or why there are none."""

    model: str
    size: int
    variant: str
    seconds: Optional[float] = None
    peak_bytes: Optional[int] = None
    baseline_bytes: Optional[int] = None
    note: str = ""
    precision: str = "fp32"  # as resolved: fp32, bf16 or fp16


def run_encoder_bench(args: argparse.Namespace) -> int:
    """Run every (model, size, variant) case and print one table per model and size."""
    from ..basam.attention import check_beta
    from ..models import default_device
    from ..vocabulary import check_size

    try:
        sizes = [check_size(s) for s in args.sizes]
        beta = check_beta(args.beta)
        if args.repeats < 1:
            raise ValueError(f"--repeats must be at least 1, got {args.repeats}")
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    device = str(args.device or default_device())
    variants = [v for v in VARIANTS if v in args.variants]
    precisions = list(dict.fromkeys(getattr(args, "precision", None) or ["fp32"]))
    print(_header(device, args.checkpoint_dir, args.models, beta, args.repeats))
    failed = False
    for model in args.models:
        for size in sizes:
            rows = []
            for variant, precision in [(v, p) for v in variants for p in (["fp32"] if v == "stock" else precisions)]:
                skip = _stock_skip_reason(model, size, device) if variant == "stock" else None
                if skip:
                    print(f"[bench] {model} S={size} stock: {skip}", file=sys.stderr)
                    rows.append(CaseResult(model, size, variant, note=skip))
                    continue
                print(f"[bench] {model} S={size} {variant} {precision}: running ...", file=sys.stderr, flush=True)
                row = _run_case(model, size, variant, beta, device, args.repeats, args.checkpoint_dir, precision)
                failed |= row.seconds is None
                print(f"[bench] {model} S={size} {variant}: {_describe(row)}", file=sys.stderr, flush=True)
                rows.append(row)
            print(format_table(rows, beta), flush=True)
    return 1 if failed else 0


def _header(device: str, checkpoint_dir: Optional[str], models: list, beta: float, repeats: int) -> str:
    import torch

    from ..checkpoints import available_checkpoints

    found = available_checkpoints(checkpoint_dir)
    weights = ", ".join(f"{m}: {'checkpoint' if m in found else 'random'}" for m in models)
    from ..precision import cpu_has_native_bf16

    threads = torch.get_num_threads()
    memory = "peak RSS" if device.startswith("cpu") else "peak allocated (torch.cuda.max_memory_allocated)"
    bf16 = "yes" if cpu_has_native_bf16() else "no"
    return (
        f"encoder benchmark on {device} ({threads} CPU threads, CPU native bf16: {bf16}), torch {torch.__version__}; "
        f"weights {weights}\n"
        f"BA-SAM = NSF + BM-AM beta={beta:g}; time = median of {repeats}; memory = {memory}"
    )


def _describe(row: CaseResult) -> str:
    if row.seconds is None:
        return row.note
    return f"{row.seconds:.2f} s, {_gb(row.peak_bytes)} GB"


def _gb(value: Optional[int]) -> str:
    return "-" if value is None else f"{value / 1e9:.2f}"


def format_table(rows: list[CaseResult], beta: float) -> str:
    """The rows of one model and size as a text table with ours/stock ratios, BA-SAM's time
    over ours-vanilla at the same precision (the cost of the method itself, also where stock
    cannot run), and each lower-precision row's time over the fp32 row of its variant."""
    labels = {"stock": "stock encoder", "vanilla": "ours, vanilla", "basam": f"ours, BA-SAM (beta={beta:g})"}
    done = [r for r in rows if r.seconds is not None]
    stock = next((r for r in done if r.variant == "stock"), None)
    lines = [
        f"{'model':6} {'S':>5}  {'encoder':28} {'time s':>8} {'peak GB':>8} {'base GB':>8} {'time/stock':>10} "
        f"{'mem/stock':>9} {'time/vanilla':>12} {'precision':>9} {'time/fp32':>9}"
    ]
    for row in rows:
        label = labels[row.variant]
        if row.seconds is None:
            lines.append(f"{row.model:6} {row.size:>5}  {label:28} {row.note}")
            continue
        time_ratio = mem_ratio = "-"
        if stock is not None and row is not stock:
            time_ratio = f"{row.seconds / stock.seconds:.2f}"
            if row.peak_bytes and stock.peak_bytes:
                mem_ratio = f"{row.peak_bytes / stock.peak_bytes:.2f}"
        vanilla = next((r for r in done if r.variant == "vanilla" and r.precision == row.precision), None)
        vs_vanilla = f"{row.seconds / vanilla.seconds:.2f}" if row.variant == "basam" and vanilla else "-"
        fp32 = next((r for r in done if r.variant == row.variant and r.precision == "fp32"), None)
        vs_fp32 = f"{row.seconds / fp32.seconds:.2f}" if fp32 is not None and row is not fp32 else "-"
        lines.append(
            f"{row.model:6} {row.size:>5}  {label:28} {row.seconds:>8.2f} {_gb(row.peak_bytes):>8} "
            f"{_gb(row.baseline_bytes):>8} {time_ratio:>10} {mem_ratio:>9} {vs_vanilla:>12} {row.precision:>9} "
            f"{vs_fp32:>9}"
        )
    return "\n".join(lines) + "\n"


def stock_attention_bytes(model: str, size: int, itemsize: int = 4) -> int:
    """Memory the stock encoder's naive global attention needs at `size`: q.k^T, the copy
    with the relative terms and the sum being built are alive together (3 per-head N x N
    matrices for every head)."""
    heads = VIT_SHAPES[model][0]
    n = (size // 16) ** 2
    return 3 * heads * n * n * itemsize


def _stock_skip_reason(model: str, size: int, device: str) -> Optional[str]:
    if model == "vit_t":
        return None if size == 1024 else "skipped (TinyViT's stock forward only runs at 1024)"
    need = stock_attention_bytes(model, size)
    available = _available_bytes(device)
    if available is not None and need > MEMORY_FRACTION * available:
        return f"skipped (needs ~{need / 1e9:.0f} GB, {available / 1e9:.0f} GB available)"
    return None


def _available_bytes(device: str) -> Optional[int]:
    """Free memory for the device: MemAvailable for the CPU, free GPU memory for CUDA."""
    if device.startswith("cuda"):
        import torch

        return torch.cuda.mem_get_info(torch.device(device))[0]
    try:
        with open("/proc/meminfo") as meminfo:
            return int(re.search(r"MemAvailable:\s+(\d+)", meminfo.read()).group(1)) * 1024
    except (OSError, AttributeError):
        return None


def _run_case(
    model: str,
    size: int,
    variant: str,
    beta: float,
    device: str,
    repeats: int,
    checkpoint_dir: Optional[str],
    precision: str = "fp32",
) -> CaseResult:
    """Run one case in a fresh subprocess and parse the JSON line it prints last."""
    spec = dict(model=model, size=size, variant=variant, beta=beta, device=device, repeats=repeats,
                checkpoint_dir=checkpoint_dir, precision=precision)
    command = [sys.executable, "-c", "import sys; from basam_ui.bench.encoder import case_worker; sys.exit(case_worker())"]
    proc = subprocess.run(command, input=json.dumps(spec), stdout=subprocess.PIPE, text=True)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        reason = "killed (out of memory?)" if proc.returncode in (-9, 137) else f"exit code {proc.returncode}"
        return CaseResult(model, size, variant, note=f"failed ({reason})")
    found = json.loads(lines[-1])
    return CaseResult(
        model, size, variant, found["seconds"], found["peak_bytes"], found["baseline_bytes"], precision=found["precision"]
    )


def case_worker() -> int:
    """Subprocess side of `_run_case`: read a JSON spec on stdin, time the case, print JSON."""
    import torch

    from ..models import official_or_random
    from ..precision import autocast, resolve_precision

    spec = json.loads(sys.stdin.read())
    device = torch.device(spec["device"])
    size, variant = spec["size"], spec["variant"]
    precision = resolve_precision(spec.get("precision", "fp32"), device)
    sam = official_or_random(spec["model"], device, spec["checkpoint_dir"])
    x = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(0)).to(device)
    run_fp32, restore = _case_runner(sam, variant, spec["beta"])

    def run(x):
        with autocast(precision, device):
            return run_fp32(x)

    try:
        # one warm-up where it is cheap: at the size itself up to 1024 or on a GPU, else a
        # small one that still loads every kernel
        warm = x if (size <= 1024 or device.type == "cuda") else x[..., :512, :512].contiguous()
        run(warm)
        _sync(device)
        baseline = _current_memory(device)
        peak = _PeakMemory(device)
        times = []
        for i in range(spec["repeats"]):
            _sync(device)
            start = time.perf_counter()
            run(x)
            _sync(device)
            times.append(time.perf_counter() - start)
            print(f"[bench]   repeat {i + 1}: {times[-1]:.2f} s", file=sys.stderr, flush=True)
        peak_bytes = peak.stop()
    finally:
        restore()
    print(json.dumps(dict(seconds=statistics.median(times), peak_bytes=peak_bytes, baseline_bytes=baseline,
                          precision=precision)))  # fmt: skip
    return 0


def _case_runner(sam, variant: str, beta: float):
    """(run(x), restore()) for a variant; the stock ViT at S != 1024 gets its pos_embed
    resized on this (the subprocess's own) model, and restore() puts the original back."""
    import torch

    from ..basam import BASAMConfig, encode
    from ..basam.vit import resize_pos_embed

    if variant == "vanilla":
        return (lambda x: encode(sam, x, BASAMConfig.vanilla())), (lambda: None)
    if variant == "basam":
        config = BASAMConfig.preset("basam", beta)
        return (lambda x: encode(sam, x, config)), (lambda: None)

    encoder = sam.image_encoder
    original = getattr(encoder, "pos_embed", None)

    def run_stock(x):
        with torch.no_grad():
            if original is not None:
                grid = x.shape[-1] // 16
                encoder.pos_embed = torch.nn.Parameter(resize_pos_embed(original, grid), requires_grad=False)
            return encoder(x)

    def restore():
        if original is not None:
            encoder.pos_embed = original

    return run_stock, restore


def _sync(device) -> None:
    if device.type == "cuda":
        import torch

        torch.cuda.synchronize(device)


def _status_kb(field: str) -> Optional[int]:
    try:
        with open("/proc/self/status") as status:
            found = re.search(rf"{field}:\s+(\d+)", status.read())
    except OSError:
        return None
    return int(found.group(1)) if found else None


def _current_memory(device) -> Optional[int]:
    if device.type == "cuda":
        import torch

        return torch.cuda.memory_allocated(device)
    kb = _status_kb("VmRSS")
    return None if kb is None else kb * 1024


class _PeakMemory:
    """Peak memory from now on: CUDA's peak counter, else the kernel's VmHWM after resetting
    it through /proc/self/clear_refs, else a thread sampling VmRSS every 10 ms."""

    def __init__(self, device) -> None:
        self.device = device
        self._sampler: Optional[threading.Thread] = None
        self._done = threading.Event()
        self._sampled = 0
        if device.type == "cuda":
            import torch

            torch.cuda.reset_peak_memory_stats(device)
            return
        try:
            with open("/proc/self/clear_refs", "w") as clear:
                clear.write("5")  # resets VmHWM to the current RSS
            self._hwm = True
        except OSError:
            self._hwm = False
            self._sampler = threading.Thread(target=self._sample, daemon=True)
            self._sampler.start()

    def _sample(self) -> None:
        while not self._done.is_set():
            self._sampled = max(self._sampled, (_status_kb("VmRSS") or 0) * 1024)
            time.sleep(0.01)

    def stop(self) -> Optional[int]:
        if self.device.type == "cuda":
            import torch

            return torch.cuda.max_memory_allocated(self.device)
        if self._hwm:
            kb = _status_kb("VmHWM")
            return None if kb is None else kb * 1024
        self._done.set()
        if self._sampler is not None:
            self._sampler.join()
        return self._sampled or None

