"""The transport: listening, parsing, pooled connections and TLS, under every journey.

The layers never see bytes; this package turns bytes into minimesh's own
Request and Response (message.py) and back, with the limits a proxy needs.
"""
