"""Live-stream sessions: a stream's frames, sent as they come, matched against the shared videos
(docs/video.md, "Live streams")."""
