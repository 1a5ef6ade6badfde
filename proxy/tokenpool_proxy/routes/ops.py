"""Operations endpoints: liveness, readiness (first full sync done), original /health, metrics."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends
from starlette.responses import Response

from ..auth import services
from ..responses import JSON
from ..services import Services
from ..usage.stats import health_stats

router = APIRouter()
Svc = Annotated[Services, Depends(services)]


@router.get("/healthz")
async def healthz() -> JSON:
    return JSON({"status": "ok"})


@router.get("/readyz")
async def readyz(svc: Svc) -> JSON:
    if svc.routes_ready():
        return JSON({"status": "ready"})
    reason = "routes are stale: a watch keeps failing" if svc.index.ready else "routes not synced yet"
    return JSON({"status": "not ready", "reason": reason}, status_code=503)


@router.get("/health")
async def health(svc: Svc) -> JSON:
    return JSON(
        {
            "status": "healthy" if svc.index.ready else "starting",
            "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "stats": {**svc.index.counts(), **health_stats(svc), "ready": svc.index.ready},
        }
    )


@router.get("/metrics")
async def metrics(svc: Svc) -> Response:
    body = svc.metrics.render(svc.routes_ready(), svc.index.counts())
    return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")
