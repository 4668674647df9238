"""``python -m service.client``: the console command (``service.client.cli``)."""

import sys

from service.client.cli import main

sys.exit(main())
