"""``python -m service``: serve every model of the repository over gRPC."""

from __future__ import annotations

import asyncio
import logging
import sys

from pydantic import ValidationError

from modelrepo import SpecError
from service.app import serve
from service.config import load_settings
from service.transport.interceptors import RequestIdFilter


def main(argv: list[str] | None = None) -> int:
    try:
        settings = load_settings(sys.argv[1:] if argv is None else argv)
    except ValidationError as error:  # a startup error, said plainly: no traceback
        for problem in error.errors():
            where = ".".join(str(part) for part in problem["loc"])
            message = str(problem["msg"]).removeprefix("Value error, ")
            print(f"python -m service: {where + ': ' if where else ''}{message}", file=sys.stderr)
        return 2
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
