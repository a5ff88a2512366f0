"""The web layer: the Gradio pages and what their events do.

- `common/`: what both pages share — the engine (models, one embedding cache, the work
  folder), the session, the shared prompt/decode events, the canvas (canvas.py, .js, .css)
  and its hooks for page extensions, rendering, logins, ZeroGPU work, `serve()`, page helpers;
- `compare/`: the compare page (SAM next to BA-SAM on an uploaded image) and its /segment API;
- `annotate/`: the annotate page of a project (objects, classes, brush, claims, prefetch).

Importing any of it turns Gradio's usage analytics off first (Gradio reads the variable when
it is imported), so no usage data about the (possibly medical) images leaves the machine.
"""

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
