"""Shared fixtures: seeded random-weight models and checkpoints in the official layout."""

from __future__ import annotations

from pathlib import Path

import pytest



@pytest.fixture(scope="module")
def one_torch_thread():
    """Run a module's model work on one torch thread. On a 2-core machine shared with other
    jobs, two OpenMP threads spend most of each small decoder op waiting at barriers for the
    busy core (measured: 10 clicks took 13.6 s with two threads, 1.3 s with one). Nothing
    asserted depends on it; it keeps a file's runtime predictable. Use it with
    `pytestmark = pytest.mark.usefixtures("one_torch_thread")`."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def vit_t():
    """A seeded random-weight MobileSAM on the CPU."""
    from basam_ui.models import random_sam

    return random_sam("vit_t", seed=0, device="cpu")


@pytest.fixture(scope="module")
def page_engine(vit_t, tmp_path_factory):
    """The pages' engine around the session's random vit_t (images up to 1024 px), one per test
    module, its cache kept warm between the module's tests (a test that counts encoder passes
    makes a fresh one)."""
    from basam_ui.web.common.engine import AppEngine

    eng = AppEngine({"vit_t": lambda: vit_t}, max_size=1024, random_weights=True, work_dir=tmp_path_factory.mktemp("work"))
    yield eng
    eng.close()


@pytest.fixture(scope="module")
def engine(page_engine):
    """The pages' engine under the name the page tests use; a module that needs a fresh one
    (its own cache and encoder count) defines its own `engine`."""
    return page_engine


@pytest.fixture(scope="session")
def vit_b():
    """A seeded random-weight SAM ViT-B on the CPU."""
    from basam_ui.models import random_sam

    return random_sam("vit_b", seed=0, device="cpu")


@pytest.fixture(scope="session")
def checkpoint_files(tmp_path_factory, vit_t, vit_b) -> dict[str, Path]:
    """vit_t and vit_b random weights saved as plain state dicts under the official names."""
    from basam_ui.checkpoints import REGISTRY
    from basam_ui.models import save_state_dict

    folder = tmp_path_factory.mktemp("checkpoints")
    return {
        name: save_state_dict(model, folder / REGISTRY[name].filename)
        for name, model in (("vit_t", vit_t), ("vit_b", vit_b))
    }


@pytest.fixture(scope="session")
def shared_images() -> list[Path]:
    """The four real 2048-2241 px photographs kept in tests/data (see photos.py)."""
    from photos import photos

    return photos()
