"""uvicorn's HTTP/1.1 protocol (h11) with a deadline for a request's headers.

uvicorn bounds the idle time between two requests (``timeout_keep_alive``) and the headers' size
(``h11_max_incomplete_event_size``), but not the time a client takes to send its headers: a
connection that sends nothing, or half a request line, stays open for good, and enough of them
take every connection the server allows. The app cannot see such a connection (it gets nothing
before the headers are complete), so the deadline is kept here; the body's is the app's
(:class:`~textopia.serving.middleware.BodyLimitMiddleware`), which can still answer 408.

::

    connection opens ──▶ headers complete? ── no, after header_timeout_s ──▶ closed
         (or the next request's first byte)        yes ──▶ the app runs the request
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

logger = logging.getLogger(__name__)


class HeaderTimeoutProtocol(H11Protocol):
    """Close a connection whose request headers are not complete ``header_timeout_s`` seconds
    after it opened, or after the first byte of its next request on a kept-alive connection.

    Args:
        *args, **kwargs: what uvicorn gives its protocol (config, server state, ...).
        header_timeout_s: the deadline, in seconds; bind it with ``functools.partial`` and pass
            the partial as uvicorn's ``http`` setting.
    """

    def __init__(self, *args: Any, header_timeout_s: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout_s = header_timeout_s
        self._header_timer: asyncio.TimerHandle | None = None

    def _awaiting_headers(self) -> bool:
        return self.conn.their_state is h11.IDLE

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_late(self) -> None:
        self._header_timer = None
        if self._awaiting_headers() and not self.transport.is_closing():
            logger.info("closed a connection from %s: no complete request headers within %g s",
                        self.client, self.header_timeout_s)
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_timer = self.loop.call_later(self.header_timeout_s, self._headers_late)

    def data_received(self, data: bytes) -> None:
        if self._header_timer is None and self._awaiting_headers():
            # A kept-alive connection's next request begins (uvicorn stops its idle timer now).
            self._header_timer = self.loop.call_later(self.header_timeout_s, self._headers_late)
        super().data_received(data)
        if not self._awaiting_headers():
            self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)
