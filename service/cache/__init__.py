"""Caching of contextual results per text: in-process LRU, then Redis, then the batcher.

See ``keys`` for the key layout shared by every replica, ``values`` for the stored format and
``texts`` for the request path (partial hits, single flight, write-behind).
"""
