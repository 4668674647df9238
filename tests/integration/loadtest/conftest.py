"""``embedload`` imports from its own folder, as in the Locust process."""

from tests.loadtest_files import import_embedload

import_embedload()
