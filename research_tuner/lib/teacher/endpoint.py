"""The teacher's server as a person sees it: its address without credentials, and whether a failure means
that no connection could be made at all (a closed port, an unknown host), which no retry fixes soon."""

from __future__ import annotations

import os
from urllib.parse import urlsplit, urlunsplit


def display_url(url: str) -> str:
    """`url` without a user:password part, so it can be printed and logged."""
    parts = urlsplit(str(url))
    if "@" not in parts.netloc:
        return str(url)
    return urlunsplit(parts._replace(netloc="***@" + parts.netloc.rpartition("@")[2]))


def cannot_connect(exc: BaseException) -> str | None:
    """Why no connection was made ('connection refused', 'name or service not known', 'connect timeout'), when
    `exc` (an openai client error) is that; None for anything else, e.g. a connection that dropped mid-answer.

    The openai client wraps the transport's ConnectError / ConnectTimeout, which wrap the socket's OSError
    (the async client through one more 'All connection attempts failed'); classes are told apart by name, so
    this holds whichever httpx build the client uses."""
    chain = _causes(exc)
    names = {cls.__name__ for error in chain[1:] for cls in type(error).__mro__}
    if "ConnectTimeout" in names:
        return "connect timeout"
    if "ConnectError" not in names:
        return None
    for error in reversed(chain):  # the socket's own reason, deepest first
        if isinstance(error, OSError) and error.errno:
            return (os.strerror(error.errno) if error.errno > 0 else str(error.strerror or error)).lower()
    return "connection failed"


def _causes(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    while exc is not None and exc not in chain and len(chain) < 12:
        chain.append(exc)
        exc = exc.__cause__ or exc.__context__
    return chain
