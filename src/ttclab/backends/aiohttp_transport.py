"""An httpx transport over aiohttp: the OpenAI backend's HTTP without httpcore's per-request cost.

httpx's own pool (httpcore + anyio) costs about 2.5 ms of CPU per small request on this project's
2-core machines, aiohttp about 0.2 ms (bench/serve.py prints both sides). The backend keeps
httpx's API (requests, responses, exceptions: every retry and error rule stays as it is); only the
wire goes through one ``aiohttp.ClientSession`` per event loop. Content is passed through undecoded
(httpx decodes it), timeouts come from httpx's request extensions, and aiohttp's errors become the
httpx exceptions the backend already handles (the root cause -- e.g. ConnectionRefusedError -- kept).
:meth:`AiohttpTransport.post_json` is the backend's plain JSON POST without httpx's request and
response objects at all (gzip / deflate bodies decoded).
"""

from __future__ import annotations

import json
import zlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import httpx


class RawResponse:
    """What :meth:`AiohttpTransport.post_json` returns (the httpx.Response attributes the backend reads)."""

    __slots__ = ("status_code", "reason_phrase", "headers", "content")

    def __init__(self, status: int, reason: str, headers: Any, content: bytes) -> None:
        self.status_code = status
        self.reason_phrase = reason
        self.headers = headers
        self.content = content

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.content)


class _Body(httpx.AsyncByteStream):
    def __init__(self, response: aiohttp.ClientResponse, request: httpx.Request) -> None:
        self._response = response
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.content.iter_any():
                yield chunk
        except TimeoutError as exc:
            raise httpx.ReadTimeout(str(exc) or "read timeout", request=self._request) from exc
        except aiohttp.ClientError as exc:
            raise httpx.ReadError(str(exc) or type(exc).__name__, request=self._request) from exc

    async def aclose(self) -> None:
        self._response.release()


class AiohttpTransport(httpx.AsyncBaseTransport):
    """``httpx.AsyncClient(transport=AiohttpTransport(max_connections))``."""

    def __init__(self, max_connections: int = 100) -> None:
        self.max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self.max_connections, limit_per_host=self.max_connections)
            self._session = aiohttp.ClientSession(connector=connector, auto_decompress=False, trust_env=False,
                                                  skip_auto_headers=("User-Agent", "Content-Type"))
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        t = request.extensions.get("timeout") or {}
        timeout = aiohttp.ClientTimeout(total=None, connect=t.get("connect"), sock_read=t.get("read"),
                                        sock_connect=t.get("connect"))
        body = request.content if request.method not in ("GET", "HEAD") else None
        try:
            response = await self._client().request(request.method, str(request.url), headers=request.headers.multi_items(),
                                                    data=body, timeout=timeout, allow_redirects=False)
        except TimeoutError as exc:
            raise httpx.ConnectTimeout(str(exc) or "timeout", request=request) from exc
        except aiohttp.ClientConnectorError as exc:
            raise httpx.ConnectError(str(exc), request=request) from exc
        except aiohttp.ServerDisconnectedError as exc:
            raise httpx.RemoteProtocolError(str(exc) or "server disconnected", request=request) from exc
        except aiohttp.ClientError as exc:
            raise httpx.ReadError(str(exc) or type(exc).__name__, request=request) from exc
        return httpx.Response(status_code=response.status, headers=list(response.raw_headers),
                              stream=_Body(response, request), request=request)

    async def post_json(self, url: str, body: Any, headers: Any, timeout_s: float) -> RawResponse:
        """A JSON POST straight on aiohttp (no httpx objects): status, headers and text.

        Raises ``asyncio.TimeoutError`` and ``aiohttp.ClientError`` (the caller maps them as it maps httpx's).
        """
        timeout = aiohttp.ClientTimeout(total=None, connect=timeout_s, sock_read=timeout_s, sock_connect=timeout_s)
        sent = [(k, v) for k, v in headers if k.lower() != "accept-encoding"] + [("Accept-Encoding", "gzip, deflate")]
        async with self._client().post(url, data=json.dumps(body).encode(), headers=sent, timeout=timeout,
                                       allow_redirects=False) as response:
            raw = await response.read()
            if response.headers.get("Content-Encoding", "").lower() in ("gzip", "deflate"):
                raw = zlib.decompressobj(wbits=47).decompress(raw)  # 47: a gzip or zlib header, detected
            return RawResponse(response.status, response.reason or "", response.headers, raw)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


    def __del__(self) -> None:
        # A backend reused from a new event loop drops the old loop's client without closing it (as
        # with httpx's pool): release the session quietly instead of aiohttp's unclosed-session warning.
        session = self._session
        if session is not None and not session.closed:
            connector, session._connector = session._connector, None
            try:
                if connector is not None:
                    connector._close()
            except Exception:
                pass
