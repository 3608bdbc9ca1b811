"""Connections that cannot hold the service hostage: a read deadline and a connection cap.

uvicorn closes a keep-alive connection that stays idle between requests, but waits forever for
a client that opens a connection and sends nothing, or sends its headers or body a byte at a
time ("slowloris"): enough of them take every file descriptor, and then ``/healthz`` itself is
not answered. :func:`guarded_protocol` wraps uvicorn's HTTP protocol (httptools when installed,
else h11) with two rules:

* **read deadline**: a client gets ``read_timeout`` seconds to send a whole request (headers and
  body) from the moment the connection opens or its previous answer is sent; past it, a
  connection still waiting for the client is closed. A request being *answered* is never cut.
* **connection cap**: past ``max_connections`` open connections, each new one closes the
  connections that have waited longest for their client, so a flood of stalled connections
  makes room for new clients instead of locking them out.
"""

from __future__ import annotations

import logging
import resource
import time

log = logging.getLogger(__name__)

READ_TIMEOUT = 10.0
"""Seconds a client has to send a request (headers and body), and to start the next one."""
RESERVED_DESCRIPTORS = 256  # files, sockets and logs the process needs besides connections


def raise_descriptor_limit() -> int:
    """Raise this process's open-file limit to its hard limit (connections are file
    descriptors); returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    return soft


def default_max_connections() -> int:
    """Connections one process keeps open: its descriptors less a reserve (at least 64)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return max(64, soft - RESERVED_DESCRIPTORS)


class _Guarded:
    """Mixin over a uvicorn HTTP protocol class; see the module docstring."""

    read_timeout: float = READ_TIMEOUT
    max_connections: int = 10_000

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._waiting_since = time.monotonic()
        self._deadline = None
        self._arm()
        if len(self.connections) > self.max_connections:
            self._make_room()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._waiting_since = time.monotonic()
        self._arm()

    def connection_lost(self, exc) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        super().connection_lost(exc)

    def waiting_for_client(self) -> bool:
        """Whether the connection waits for the client (no request yet, a body still arriving,
        or the previous answer sent), rather than for the service to answer."""
        cycle = self.cycle
        return cycle is None or cycle.response_complete or cycle.more_body

    def _arm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline = self.loop.call_later(self.read_timeout, self._read_timed_out)

    def _read_timed_out(self) -> None:
        self._deadline = None
        if self.waiting_for_client() and not self.transport.is_closing():
            self.transport.close()

    def _make_room(self) -> None:
        waiting = [
            c
            for c in self.connections
            if c is not self and isinstance(c, _Guarded) and c.waiting_for_client()
        ]
        excess = len(self.connections) - self.max_connections
        waiting.sort(key=lambda c: c._waiting_since)
        for connection in waiting[: max(excess, 1)]:
            connection.transport.close()


def guarded_protocol(read_timeout: float = READ_TIMEOUT, max_connections: int | None = None):
    """uvicorn's HTTP protocol class (httptools, else h11) with the read deadline and the cap."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as base
    except ImportError:  # httptools is optional for uvicorn
        from uvicorn.protocols.http.h11_impl import H11Protocol as base
    return type(
        "GuardedHTTPProtocol",
        (_Guarded, base),
        {
            "read_timeout": float(read_timeout),
            "max_connections": max_connections or default_max_connections(),
        },
    )
