"""`basam-ui eval`: pairing layouts, GT prompts, the run's CSV / summary / plot, resume,
skipped files and the CLI, on small synthetic labelled folders with random-weight vit_t."""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from basam_ui.basam.config import BASAMConfig
from basam_ui.evaluation.datasets import load_mask, pair_folder
from basam_ui.evaluation.pairs import make_prompt
from basam_ui.evaluation.evaluate import methods_for, run_eval

SIZES = [256, 320]  # small sizes keep the CPU run short; the CLI test uses 256 and 512


def _save_case(image_path: Path, mask_path: Path, seed: int, size=(320, 384)) -> None:
    """A noisy image (h, w = size) with one filled shape, and that shape as a 0/255 PNG mask."""
    h, w = size
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 90, (h, w, 3), dtype=np.uint8)
    mask = np.zeros((h, w), np.uint8)
    if seed % 2:
        cv2.circle(mask, (w // 2 + 10 * seed, h // 2), 60 + 5 * seed, 255, -1)
    else:
        cv2.rectangle(mask, (40 + seed, 50), (w - 60, h - 80 - seed), 255, -1)
    image[mask > 0] = (200, 60 + 20 * seed, 40)
    image_path.parent.mkdir(parents=True, exist_ok=True)
    mask_path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(image_path)
    Image.fromarray(mask).save(mask_path)


def _touch(*paths: Path) -> None:
    for p in paths:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"")


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.fixture
def labelled(tmp_path) -> tuple[Path, Path]:
    """2 good pairs (one portrait), plus a corrupt image, an empty mask and an image without mask."""
    images, masks = tmp_path / "images", tmp_path / "masks"
    _save_case(images / "a.jpg", masks / "a.png", 1)
    _save_case(images / "c.png", masks / "c.png", 3, size=(384, 288))
    (images / "d_corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a JPEG")
    Image.fromarray(np.zeros((300, 300), np.uint8)).save(masks / "d_corrupt.png")
    _save_case(images / "e_empty.jpg", masks / "ignored.png", 4)
    Image.fromarray(np.zeros((320, 384), np.uint8)).save(masks / "e_empty.png")
    (masks / "ignored.png").unlink()
    _save_case(images / "f_nomask.jpg", tmp_path / "elsewhere.png", 5)
    return images, masks


@pytest.fixture
def segmenter(vit_t):
    from basam_ui.segmenter import Segmenter

    return Segmenter(vit_t, cache_bytes=64 << 20)


# ---------------------------------------------------------------- pairing


@pytest.mark.parametrize(
    "images_arg, masks_arg, image_file, mask_file",
    [
        ("DUTS-TE", "DUTS-TE", "DUTS-TE/DUTS-TE-Image/ILSVRC2012_test_00000003.jpg", "DUTS-TE/DUTS-TE-Mask/ILSVRC2012_test_00000003.png"),
        ("DUTS-TE/DUTS-TE-Image", "DUTS-TE/DUTS-TE-Mask", "DUTS-TE/DUTS-TE-Image/sun_a.jpg", "DUTS-TE/DUTS-TE-Mask/sun_a.png"),
        ("DIS-TE4", "DIS-TE4", "DIS-TE4/im/3#Accessories#1#Bag#1.jpg", "DIS-TE4/gt/3#Accessories#1#Bag#1.png"),
        ("DIS-TE4/im", "DIS-TE4/gt", "DIS-TE4/im/bag.jpg", "DIS-TE4/gt/bag.png"),
        ("COD10K/Test", "COD10K/Test", "COD10K/Test/Image/COD10K-CAM-1-Aquatic-1.jpg", "COD10K/Test/GT_Object/COD10K-CAM-1-Aquatic-1.png"),
        ("ISIC/img", "ISIC/gt", "ISIC/img/ISIC_0012086.jpg", "ISIC/gt/ISIC_0012086_Segmentation.png"),
        ("ISIC", "ISIC", "ISIC/ISIC_0012086.jpg", "ISIC/ISIC_0012086_segmentation.png"),  # one shared folder
        ("x/imgs", "x/labels", "x/imgs/cat.png", "x/labels/cat_mask.png"),
        ("x/imgs", "x/labels", "x/imgs/cat.png", "x/labels/cat-mask.png"),
        ("x/imgs", "x/labels", "x/imgs/Cat.tif", "x/labels/cat_GT.bmp"),
    ],
)
def test_dataset_layouts_are_recognised(tmp_path, images_arg, masks_arg, image_file, mask_file):
    image, mask = tmp_path / image_file, tmp_path / mask_file
    _touch(image, mask)
    # distractors: COD10K's edge ground truth under the same name, and a file with no
    # partner on each side
    _touch(mask.parent.parent / "GT_Edge" / mask.name)
    _touch(image.parent / "zz_lonely.jpg", mask.parent / "zz_orphan_mask.png")

    pairing = pair_folder(tmp_path / images_arg, tmp_path / masks_arg)

    assert [(p.image, p.mask) for p in pairing.pairs] == [(image, mask)]
    assert [p.name for p in pairing.unpaired_images] == ["zz_lonely.jpg"]
    assert [p.name for p in pairing.unpaired_masks] == ["zz_orphan_mask.png"]


def test_pairing_is_sorted_and_exact_stem_wins(tmp_path):
    _touch(*(tmp_path / "i" / f"{n}.jpg" for n in ("b", "a", "c")))
    _touch(*(tmp_path / "m" / f for f in ("c.png", "b.png", "a_mask.png", "a.png")))
    pairing = pair_folder(tmp_path / "i", tmp_path / "m")
    names = [(p.image.name, p.mask.name) for p in pairing.pairs]
    assert names == [("a.jpg", "a.png"), ("b.jpg", "b.png"), ("c.jpg", "c.png")]
    assert [p.name for p in pairing.unpaired_masks] == ["a_mask.png"]


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="masks folder .*nope"):
        pair_folder(tmp_path, tmp_path / "nope")


def test_load_mask_binarises_at_128(tmp_path):
    values = np.array([[0, 127, 128, 255]], np.uint8)
    Image.fromarray(values).save(tmp_path / "grey.png")
    assert load_mask(tmp_path / "grey.png").tolist() == [[False, False, True, True]]
    Image.fromarray(np.array([[0, 1, 1, 0]], np.uint8)).save(tmp_path / "zero_one.png")  # 0/1 label maps
    assert load_mask(tmp_path / "zero_one.png").tolist() == [[False, True, True, False]]
    Image.fromarray(np.stack([values] * 3, axis=-1)).save(tmp_path / "rgb.png")
    assert load_mask(tmp_path / "rgb.png").tolist() == [[False, False, True, True]]
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="bad.png"):
        load_mask(tmp_path / "bad.png")


# ---------------------------------------------------------------- prompts


def test_prompts_from_ground_truth():
    gt = np.zeros((100, 120), bool)
    cv2.circle(gt.view(np.uint8), (70, 40), 20, 1, -1)

    point = make_prompt("point", gt, seed=0, stem="img")
    x, y = point.point_coords[0].astype(int)
    assert gt[y, x] and point.point_labels.tolist() == [1]
    again = make_prompt("point", gt, seed=0, stem="img")
    assert np.array_equal(again.point_coords, point.point_coords)  # same for every method and size
    others = {tuple(make_prompt("point", gt, seed=s, stem="img").point_coords[0]) for s in range(1, 6)}
    assert len(others | {tuple(point.point_coords[0])}) > 1  # the seed matters

    assert make_prompt("center", gt, 0, "img").point_coords.tolist() == [[70, 40]]
    ys, xs = np.nonzero(gt)
    assert make_prompt("box", gt, 0, "img").box.tolist() == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
    assert make_prompt("box", gt, 0, "img").box.tolist() == [50, 20, 91, 61]
    one_pixel = np.zeros((5, 5), bool)
    one_pixel[2, 3] = True
    assert make_prompt("box", one_pixel, 0, "img").box.tolist() == [3, 2, 4, 3]
    with pytest.raises(ValueError, match="empty"):
        make_prompt("point", np.zeros((4, 4), bool), 0, "img")


def test_center_prompt_stays_off_the_image_border():
    gt = np.zeros((40, 100), bool)
    gt[:, :60] = True  # touches the top, bottom and left edges: the centre is mid-height
    x, y = make_prompt("center", gt, 0, "img").point_coords[0]
    assert 19 <= y <= 20 and 19 <= x <= 40


def test_methods_and_ablation():
    assert methods_for(0.3) == {"vanilla": BASAMConfig.vanilla(), "BA-SAM": BASAMConfig(True, True, 0.3)}
    ablation = methods_for(0.3, ablation=True)
    assert list(ablation) == ["vanilla", "BA-SAM", "NSF only", "BM-AM only"]
    assert ablation["NSF only"] == BASAMConfig(True, False, 0.0)  # no slope without BM-AM: the page's key
    assert ablation["BM-AM only"] == BASAMConfig(False, True, 0.3)


# ---------------------------------------------------------------- the run


def _recomputed_summary(rows: list[dict[str, str]]) -> dict[tuple, tuple[float, float | None]]:
    """(prompt, method, size) -> (mean MAE, delta_diff) computed from CSV text."""
    maes = defaultdict(list)
    for r in rows:
        maes[(r["prompt"], r["method"], int(r["size"]))].append(float(r["mae"]))
    means = {k: sum(v) / len(v) for k, v in maes.items()}
    out = {}
    for (prompt, method, size), m in means.items():
        smallest = min(s for p, me, s in means if (p, me) == (prompt, method))
        out[(prompt, method, size)] = (m, None if size == smallest else (m - means[(prompt, method, smallest)]) * 100)
    return out


def test_run_eval_writes_results_summary_plot_and_resumes(tmp_path, labelled, segmenter, capsys):
    pairing = pair_folder(*labelled)
    assert [p.image.name for p in pairing.pairs] == ["a.jpg", "c.png", "d_corrupt.jpg", "e_empty.jpg"]
    assert [p.name for p in pairing.unpaired_images] == ["f_nomask.jpg"]
    unpaired = [{"image": "f_nomask.jpg", "mask": "", "reason": "no mask found"}]
    out = tmp_path / "out"

    args = (segmenter, pairing.pairs, SIZES, ["point", "box"], methods_for(0.1), out)
    result = run_eval(*args, seed=0, unpaired=unpaired)

    # one encoder pass per (image, size, method), shared by the two prompts
    assert result.encoder_calls == 2 * len(SIZES) * 2
    rows = _read_csv(out / "results.csv")
    assert len(rows) == result.new_rows == 2 * len(SIZES) * 2 * 2
    keys = {(r["image"], r["size"], r["method"], r["prompt"]) for r in rows}
    assert len(keys) == len(rows)
    assert {r["image"] for r in rows} == {"a.jpg", "c.png"}
    assert {"encode_s", "mae", "iou", "dice", "mask"} <= set(rows[0])
    assert {r["precision"] for r in rows} == {segmenter.encoder_precision}  # the encoder's, as run
    for r in rows:
        assert 0 <= float(r["mae"]) <= 1 and 0 <= float(r["iou"]) <= 1 and 0 <= float(r["dice"]) <= 1
        assert (int(r["height"]), int(r["width"])) == ((384, 288) if r["image"] == "c.png" else (320, 384))
    # the point is the same for every method and size of an image
    points = defaultdict(set)
    for r in rows:
        points[(r["image"], r["prompt"])].add(r["prompt_xy"])
    assert all(len(v) == 1 for v in points.values())

    # summary: means and delta_diff recomputed from the CSV text
    expected = _recomputed_summary(rows)
    summary_rows = _read_csv(out / "summary.csv")
    assert len(summary_rows) == len(expected) == 2 * 2 * len(SIZES)
    for s in summary_rows:
        mean, delta = expected[(s["prompt"], s["method"], int(s["size"]))]
        assert float(s["mae"]) == pytest.approx(mean, abs=1e-6)
        assert (s["delta_diff"] == "") if delta is None else float(s["delta_diff"]) == pytest.approx(delta, abs=1e-4)
        assert int(s["images"]) == 2
    markdown = (out / "summary.md").read_text(encoding="utf-8")
    for s in result.summary:
        assert f"| {s['method']} | {s['size']} | {s['mae']:.3f} |" in markdown
    assert "prompt: point" in markdown and "prompt: box" in markdown

    png = (out / "mae_vs_size.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    with Image.open(out / "mae_vs_size.png") as im:
        im.verify()

    skipped = {r["image"] or r["mask"]: r["reason"] for r in _read_csv(out / "skipped.csv")}
    assert set(skipped) == {"d_corrupt.jpg", "e_empty.jpg", "f_nomask.jpg"}
    assert "d_corrupt.jpg" in skipped["d_corrupt.jpg"] and "empty" in skipped["e_empty.jpg"]
    err = capsys.readouterr().err
    assert "d_corrupt.jpg" in err and "e_empty" in err

    # a second run finds everything done: no encoder pass, no new row, same summary
    again = run_eval(*args, seed=0, unpaired=unpaired)
    assert again.encoder_calls == 0 and again.new_rows == 0
    assert _read_csv(out / "results.csv") == rows
    assert again.summary == result.summary

    # --ablation on top: only the two new methods are encoded
    ablation = run_eval(segmenter, pairing.pairs, [256], ["point"], methods_for(0.1, ablation=True), out, limit=1)
    assert ablation.encoder_calls == 2
    assert [s["method"] for s in ablation.summary] == ["vanilla", "BA-SAM", "NSF only", "BM-AM only"]
    assert len(_read_csv(out / "results.csv")) == len(rows) + 2


def test_mask_at_another_scale_is_measured_at_mask_size(tmp_path, segmenter):
    _save_case(tmp_path / "i" / "big.jpg", tmp_path / "m" / "big.png", 1, size=(320, 384))
    small = Image.open(tmp_path / "m" / "big.png").resize((192, 160), Image.NEAREST)
    small.save(tmp_path / "m" / "big.png")
    result = run_eval(segmenter, pair_folder(tmp_path / "i", tmp_path / "m").pairs, [256], ["center"],
                      {"vanilla": BASAMConfig.vanilla()}, tmp_path / "out")  # fmt: skip
    assert [(r["height"], r["width"]) for r in result.rows] == [(160, 192)]
    # the prompt is found on the mask's grid and scaled by 2 to the image's pixels
    x, y = make_prompt("center", load_mask(tmp_path / "m" / "big.png"), 0, "big").point_coords[0]
    assert result.rows[0]["prompt_xy"] == f"{2 * x:g} {2 * y:g}"


def test_cli_eval(tmp_path, labelled, capsys):
    from basam_ui import cli

    images, masks = labelled
    out = tmp_path / "cli-out"
    argv = ["eval", "--images", str(images), "--masks", str(masks), "--random-weights", "--model", "vit_t",
            "--sizes", "256", "512", "--limit", "1", "--out", str(out), "--device", "cpu"]  # fmt: skip
    assert cli.main(argv) == 0
    captured = capsys.readouterr()
    for name in ("results.csv", "summary.md", "summary.csv", "mae_vs_size.png", "skipped.csv"):
        assert (out / name).is_file(), name
    assert len(_read_csv(out / "results.csv")) == 2 * 2  # 1 image x 2 sizes x 2 methods, point prompt
    assert "| BA-SAM | 512 |" in captured.out
    assert "f_nomask.jpg" in captured.err  # unpaired files are reported


def test_cli_eval_errors_exit_1_without_traceback(tmp_path, labelled, capsys):
    from basam_ui import cli

    images, masks = labelled
    common = ["eval", "--images", str(images), "--masks", str(masks), "--out", str(tmp_path / "o"), "--device", "cpu"]
    assert cli.main(common + ["--checkpoint", str(tmp_path / "missing.pt")]) == 1
    assert cli.main(common + ["--random-weights", "--sizes", "1000"]) == 1
    assert cli.main(["eval", "--images", str(tmp_path / "nope"), "--masks", str(masks), "--out", "o"]) == 1
    err = capsys.readouterr().err
    assert "missing.pt" in err and "multiples of 16" in err and "nope" in err
    assert "Traceback" not in err
