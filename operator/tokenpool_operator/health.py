"""The operator's liveness endpoint: ``GET /healthz`` answers from the operator's event loop.

Kopf's built-in liveness endpoint caches probe results for 10 seconds; this one answers live, so
it also tells tests and admins how much work is queued (``pending``) and done (``processed``).
It fails (503) when a reconcile worker died, which Kubernetes then answers with a restart.
"""

from __future__ import annotations

from aiohttp import web

from tokenpool_operator.workqueue import WorkQueue


async def serve(queue: WorkQueue, host: str, port: int) -> web.AppRunner:
    async def healthz(_: web.Request) -> web.Response:
        body = {"status": "ok" if queue.alive() else "failed", "queue": queue.stats()}
        return web.json_response(body, status=200 if queue.alive() else 503)

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
