"""The served model versions: what answers requests, every known version's state, and the one
lifecycle that keeps them in line with the repository. (Not ``models``: that name is the
repository's.)"""
