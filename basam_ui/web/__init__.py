"""The web layer: the Gradio pages and what their events do.

- `session`: one user's state and the values the page and API send (no Gradio)
- `engine`: the models, the shared embedding cache, the work folder; `run_side` (no Gradio)
- `compare`: the compare page's events (no Gradio); `api`: the /segment function (no Gradio)
- `render`: pictures drawn on the server; `canvas`: the prompt canvas component
- `compare_page`: the compare page's layout and wiring; `server`: engines from options, `main`
- `gpu_work`: encode and decode as a ZeroGPU worker runs them (no Gradio)
- `annotate`: the annotate page's events (no Gradio); `annotate_view`: what it shows (no Gradio)
- `annotate_page`: its layout and wiring; `annotate_server`: `basam-ui annotate DIR` serves it
- `prefetch`: one background thread encoding the next to-do image while the server is idle
- `auth`: logins from options, a file or the Space's secret; the login name of a request (no Gradio)
"""
