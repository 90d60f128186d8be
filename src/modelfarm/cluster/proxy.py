"""A middleware for Ray Serve's HTTP proxy: one `x-request-id` per response.

Ray's proxy appends its own `X-Request-ID` to every response, after the gateway's own (the
ledger id, `chatcmpl-...`); clients would see two. Ray applies the middlewares returned by
the callback named in `RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH` outside its own, so this
one sees both and keeps the first: the gateway's. The local instance sets the variable; on a
cluster, export it on every node before `ray start` (see docs/ray.md).
"""

from __future__ import annotations

from starlette.middleware import Middleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CALLBACK_ENV = "RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH"
CALLBACK = "modelfarm.cluster.proxy.middlewares"


class OneRequestId:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_one(message: Message) -> None:
            if message["type"] == "http.response.start":
                seen = False
                headers = []
                for key, value in message.get("headers", []):
                    if key.lower() == b"x-request-id":
                        if seen:
                            continue
                        seen = True
                    headers.append((key, value))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_one)


def middlewares() -> list[Middleware]:
    """Ray's HTTP proxy callback."""
    return [Middleware(OneRequestId)]
