"""Hugging Face Space entry point (README front matter: `sdk: gradio`, `app_file: app.py`).

At start-up the default checkpoint (vit_t, or $BASAM_UI_MODEL) is downloaded into the
checkpoint folder; BASAM_UI_RANDOM_WEIGHTS=1 runs untrained weights instead (the page says
so). Logins come from the secret BASAM_UI_AUTH (one user:password a line): without it a
public Space is open to everyone. On ZeroGPU (SPACES_ZERO_GPU set by the platform) the
encodes and decodes run under spaces.GPU, the embeddings cached in this process.
Locally, `python app.py` serves the same page on http://127.0.0.1:7860.
"""

import os

if os.environ.get("SPACES_ZERO_GPU", "").strip().lower() in ("1", "t", "true"):
    import spaces  # noqa: F401  (ZeroGPU: imported before torch, as the platform asks)

from basam_ui.web.compare.serve import space_app  # noqa: E402

demo, launch_options = space_app()

if __name__ == "__main__":
    demo.launch(**launch_options)
