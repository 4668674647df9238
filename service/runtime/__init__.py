"""One runtime per architecture behind one small protocol (``base``), and the request options
their methods take, re-exported here for callers outside ``service`` (evaluation in ``export``
runs the served runtimes, and may import nothing else of ``service``)."""

from service.domain import EmbedOptions, Pooling

__all__ = ["EmbedOptions", "Pooling"]
