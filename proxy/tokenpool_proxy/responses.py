"""Response classes: JSON via orjson (FastAPI's ORJSONResponse is deprecated), and the relay stream."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any

import anyio
import orjson
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send


class JSON(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


class RelayStream(StreamingResponse):
    """A streaming response that notices a client disconnect *while the upstream is silent*.

    Starlette's StreamingResponse only watches for disconnects on old ASGI servers; on newer ones
    it learns of a gone client at the next write, which a hanging upstream may never produce.
    Here the body is always raced against ``http.disconnect``, and the body iterator is closed in
    every case, and ``on_close`` (release the token slot, close the upstream response) runs now.
    """

    body_iterator: AsyncGenerator[bytes, None]

    def __init__(
        self,
        content: AsyncGenerator[bytes, None],
        media_type: str,
        headers: dict[str, str],
        on_close: Callable[[], Awaitable[None]],
    ) -> None:
        super().__init__(content, media_type=media_type, headers=headers)
        self.on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            async with anyio.create_task_group() as tg:

                async def stream_then_cancel() -> None:
                    await self.stream_response(send)
                    tg.cancel_scope.cancel()

                tg.start_soon(stream_then_cancel)
                await self.listen_for_disconnect(receive)
                tg.cancel_scope.cancel()
        except OSError:
            pass  # the client went away mid-write
        finally:
            await self.body_iterator.aclose()
            await self.on_close()
