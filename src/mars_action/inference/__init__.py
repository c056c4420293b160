"""Flow-free recognition of files and live streams, export, latency."""
