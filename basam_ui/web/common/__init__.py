"""What both pages share: `engine` (models, the one embedding cache, the work folder),
`session` (a user's state), `events` (opening an image, encoding, prompting, what the canvas
and the status line show), `canvas` (the prompt canvas: canvas.py, canvas.js, canvas.css),
`render` (display copies, packed masks), `gpu_work` (ZeroGPU), `auth` (logins), `page`
(Gradio helpers), `serve` (launching a page)."""
