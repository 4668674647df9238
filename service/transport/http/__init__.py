"""The OpenAI-compatible HTTP API, a second transport over the same embedder as gRPC."""
