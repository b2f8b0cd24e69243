"""Online recognition: audio arriving in pieces (sessions, segmenter, VAD), models loaded
for serving, and the client of a running server. No Ray: `serve/` wraps these.
"""
