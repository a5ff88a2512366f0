"""Hugging Face Space entry point (README front matter: `sdk: gradio`, `app_file: app.py`).

At start-up the default checkpoint (vit_t, or $BASAM_UI_MODEL) is downloaded into the
checkpoint folder; BASAM_UI_RANDOM_WEIGHTS=1 runs untrained weights instead (the page says
so). With the `spaces` package present (ZeroGPU), the model work runs under spaces.GPU.
Locally, `python app.py` serves the same page on http://127.0.0.1:7860.
"""

from basam_ui.web.server import space_app

demo, launch_options = space_app()

if __name__ == "__main__":
    demo.launch(**launch_options)
