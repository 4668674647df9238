"""``python -m service``: serve every model of the repository over gRPC."""

from __future__ import annotations

import asyncio
import logging
import sys

from modelrepo import SpecError
from service.app import serve
from service.config import load_settings
from service.transport.interceptors import RequestIdFilter


def main(argv: list[str] | None = None) -> int:
    settings = load_settings(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s",
    )
    for handler in logging.getLogger().handlers:
        handler.addFilter(RequestIdFilter())
    try:
        asyncio.run(serve(settings))
    except (SpecError, OSError, RuntimeError) as error:
        logging.getLogger("service").error("%s", error)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
