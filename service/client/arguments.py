"""How both clients take their arguments: the texts (or words) first, the model by keyword,
checked before anything is sent; the order from before the model became keyword-only still
works, with a DeprecationWarning."""

from __future__ import annotations

import functools
import inspect
import warnings
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, cast

R = TypeVar("R")
POSITIONAL_MODEL = "a positional model is deprecated: pass it by keyword (model=NAME)"


def _usage(method: str, first: str) -> str:
    return f"call {method}({first}, model=NAME, ...), the model by keyword"


def model_by_keyword(*old_order: str) -> Callable[[Callable[..., R]], Callable[..., R]]:
    """Checks each call of a method that takes the texts (or words) first and the model by
    keyword, before anything is sent. The order most people guess, ``embed("bert", texts)``,
    would otherwise fail deep inside protobuf, and a bare str as the texts would be sent as one
    text per character: both are a TypeError that names the order. ``old_order`` lists the
    method's positional parameters from before the model became keyword-only; a call in that
    order (``embed(texts, "bert")``) still works, with a DeprecationWarning."""

    def decorate(method: Callable[..., R]) -> Callable[..., R]:
        name = method.__name__
        first = list(inspect.signature(method).parameters)[1]  # after self

        def arguments(args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
            legacy = len(args) > 1 or (
                # most_similar(model, positive): the old order put the model first
                old_order[0] == "model"
                and len(args) == 1
                and isinstance(args[0], str)
                and "model" not in kwargs
            )
            names = old_order if legacy else (first,)
            if len(args) > len(names):
                raise TypeError(
                    f"{name}() takes at most {len(old_order)} positional arguments, in the "
                    f"deprecated order ({', '.join(old_order)}); {_usage(name, first)}"
                )
            given = dict(zip(names, args, strict=False))
            if twice := sorted(given.keys() & kwargs.keys()):
                raise TypeError(f"{name}() got multiple values for argument {twice[0]!r}")
            given.update(kwargs)
            _check(name, first, given)
            if legacy:
                # the caller's line: this function, the wrapper, then the call
                warnings.warn(f"{name}(): {POSITIONAL_MODEL}", DeprecationWarning, stacklevel=3)
            return given

        if inspect.iscoroutinefunction(method):

            @functools.wraps(method)
            async def call_async(self: object, *args: Any, **kwargs: Any) -> Any:
                return await method(self, **arguments(args, kwargs))

            return cast(Callable[..., R], call_async)

        @functools.wraps(method)
        def call(self: object, *args: Any, **kwargs: Any) -> R:
            return method(self, **arguments(args, kwargs))

        return call

    return decorate


def _check(method: str, first: str, arguments: Mapping[str, Any]) -> None:
    if first not in arguments:
        raise TypeError(f"{method}() missing its {first}: {_usage(method, first)}")
    if "model" not in arguments:
        raise TypeError(f"{method}() needs the model by keyword: {_usage(method, first)}")
    texts, model = arguments[first], arguments["model"]
    if isinstance(texts, str | bytes):
        shown = f"{texts[:40]!r}{'…' if len(texts) > 40 else ''}"
        raise TypeError(
            f"{method}(): {first} must be a list of strings, not the {type(texts).__name__} "
            f"{shown}; {_usage(method, first)}"
        )
    if not isinstance(model, str):
        raise TypeError(
            f"{method}(): model must be a str, not {type(model).__name__}; {_usage(method, first)}"
        )
