"""The load-balancing algorithm, switchable at run time (admin)."""

from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint

from app.api.auth import requires
from app.api.schemas import AlgorithmIn, AlgorithmOut
from app.core.balancing import Algorithm
from app.extensions import current_context as ctx
from app.services import servers

bp = APIBlueprint("balancer", __name__, url_prefix="/api/loadbalancer", tag="Load balancer")
BEARER = {"security": "BearerAuth"}


def _view(algorithm: Algorithm) -> dict[str, Any]:
    return {"algorithm": algorithm.value, "available": [a.value for a in Algorithm]}


@bp.get("/algorithm")
@requires("admin")
@bp.output(AlgorithmOut)
@bp.doc(**BEARER)
def get_algorithm() -> Any:
    return _view(servers.algorithm(ctx()))


@bp.put("/algorithm")
@requires("admin")
@bp.input(AlgorithmIn, arg_name="data")
@bp.output(AlgorithmOut)
@bp.doc(responses={422: "Unknown algorithm"}, **BEARER)
def set_algorithm(data: dict[str, Any]) -> Any:
    algorithm = Algorithm(data["algorithm"])
    servers.set_algorithm(ctx(), algorithm)
    return _view(algorithm)
