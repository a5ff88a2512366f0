"""The annotate page of a project: `events` (what its events do), `view` (what it shows),
`page` (layout and wiring, with annotate.js added to the canvas), `prefetch` (encoding the next
image while idle), `serve` (`basam-ui annotate DIR`)."""
