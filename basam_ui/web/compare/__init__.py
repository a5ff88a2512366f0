"""The compare page: an uploaded image, SAM's mask next to BA-SAM's, and the /segment API.
`events` (what its own events do), `api` (/segment), `page` (layout and wiring), `serve`
(`basam-ui` with no command, and the Space)."""
