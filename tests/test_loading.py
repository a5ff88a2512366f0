"""load_sam: round trips, type inference, and refusal of bad or unsafe files."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from basam_ui.models import CheckpointError, infer_model_type, load_sam, model_info, random_sam


@pytest.mark.parametrize("model_type", ["vit_t", "vit_b"])
def test_round_trip_infers_type(checkpoint_files, model_type, vit_t, vit_b):
    original = {"vit_t": vit_t, "vit_b": vit_b}[model_type]
    sam = load_sam(checkpoint=checkpoint_files[model_type], device="cpu")
    assert not sam.training
    info = model_info(sam)
    assert info.model_type == model_type
    assert info.sha256 and len(info.sha256) == 64
    loaded, expected = sam.state_dict(), original.state_dict()
    assert loaded.keys() == expected.keys()
    assert all(torch.equal(loaded[k], expected[k]) for k in expected)


def test_explicit_type_must_match(checkpoint_files):
    with pytest.raises(CheckpointError) as err:
        load_sam("vit_t", checkpoint=checkpoint_files["vit_b"], device="cpu")
    message = str(err.value)
    assert "looks like a vit_b checkpoint" in message and "not vit_t" in message
    assert str(checkpoint_files["vit_b"]) in message


def test_truncated_file_fails_clearly(checkpoint_files, tmp_path):
    data = checkpoint_files["vit_t"].read_bytes()
    cut = tmp_path / "mobile_sam.pt"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt") as err:
        load_sam(checkpoint=cut, device="cpu")
    assert str(cut) in str(err.value)


def test_not_a_checkpoint(tmp_path):
    junk = tmp_path / "junk.pth"
    junk.write_text("hello")
    with pytest.raises(CheckpointError, match="junk.pth"):
        load_sam(checkpoint=junk, device="cpu")


class _RunsCode:
    """Unpickling this calls Path.touch on a marker: it would prove code ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_pickle_with_code_is_refused_and_not_run(tmp_path):
    marker = tmp_path / "code-ran"
    evil = tmp_path / "evil.pth"
    torch.save({"image_encoder.pos_embed": torch.zeros(1), "payload": _RunsCode(marker)}, evil)
    # sanity: a plain unpickler would run it
    assert not marker.exists()
    with pytest.raises(CheckpointError, match="refused to load") as err:
        load_sam(checkpoint=evil, device="cpu")
    assert str(evil) in str(err.value)
    assert not marker.exists(), "loading the checkpoint ran code"
    # and the payload really is live: the unsafe loader would have created the marker
    torch.load(evil, weights_only=False)
    assert marker.exists()


def test_wrong_shapes_fail_clearly(tmp_path, vit_b):
    state = vit_b.state_dict()
    state["mask_decoder.iou_token.weight"] = torch.zeros(3, 3)
    bad = tmp_path / "bad.pth"
    torch.save(state, bad)
    with pytest.raises(CheckpointError, match="does not fit the vit_b model") as err:
        load_sam(checkpoint=bad, device="cpu")
    assert "iou_token" in str(err.value)


def test_missing_registry_file_says_how_to_download(tmp_path):
    with pytest.raises(CheckpointError, match="basam-ui download vit_b"):
        load_sam("vit_b", checkpoint_dir=tmp_path, device="cpu")


def test_registry_file_found_in_checkpoint_dir(checkpoint_files):
    sam = load_sam("vit_t", checkpoint_dir=checkpoint_files["vit_t"].parent, device="cpu")
    assert model_info(sam).model_type == "vit_t"


def test_infer_model_type_rejects_foreign_state_dict():
    with pytest.raises(ValueError, match="not a SAM"):
        infer_model_type({"backbone.conv.weight": torch.zeros(1)})


def test_random_weights_are_seeded():
    a = random_sam("vit_t", seed=3, device="cpu").state_dict()
    b = random_sam("vit_t", seed=3, device="cpu").state_dict()
    c = random_sam("vit_t", seed=4, device="cpu").state_dict()
    key = "mask_decoder.iou_token.weight"
    assert torch.equal(a[key], b[key]) and not torch.equal(a[key], c[key])
