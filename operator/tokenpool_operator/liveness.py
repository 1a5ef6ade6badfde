"""The operator's liveness endpoint (``GET /healthz``) and its Prometheus metrics (``GET /metrics``),
both answered from the operator's event loop.

Kopf's built-in liveness endpoint caches probe results for 10 seconds; this one answers live, so
it also tells tests and admins how much work is queued (``pending``) and done (``processed``).
It fails (503) when a reconcile worker died, which Kubernetes then answers with a restart.
"""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from tokenpool_operator.workqueue import WorkQueue


async def serve(queue: WorkQueue, host: str, port: int) -> web.AppRunner:
    async def healthz(_: web.Request) -> web.Response:
        body = {"status": "ok" if queue.alive() else "failed", "queue": queue.stats()}
        return web.json_response(body, status=200 if queue.alive() else 503)

    async def metrics(_: web.Request) -> web.Response:
        body = queue.metrics.render(queue.stats())
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
