"""The sections of ``python -m bench``, one module each: measure (``bench_*``) and print
(``report_*``); what they share is in ``bench.common``."""
