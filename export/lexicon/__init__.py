"""The default corpus generator, in three parts: ``entries`` (the lexicon, from this package's
data files ``lexicon.toml`` and ``topics/*.txt``), ``grammar`` (seeded sentence sampling) and
``writer`` (files, cache, fingerprint). ``export.corpus`` is its public face.
"""
