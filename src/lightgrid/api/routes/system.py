"""/partitions and /status."""

from __future__ import annotations

import os

from fastapi import APIRouter
from sqlalchemy import func, select

import lightgrid
from lightgrid.api.deps import CenterDep, PrincipalDep
from lightgrid.api.schemas import NodeTypeOut, PartitionOut, StatusOut, TresOut
from lightgrid.core.errors import BackendUnavailable
from lightgrid.core.resources import Tres
from lightgrid.store.models import Job

router = APIRouter(tags=["system"])


def _tres(t: Tres) -> TresOut:
    return TresOut(**t.as_dict())


@router.get("/partitions", response_model=list[PartitionOut])
def partitions(center: CenterDep, _principal: PrincipalDep) -> list[PartitionOut]:
    """Partitions with their node types, capacity and load."""
    infos = {p.partition.name: p for p in center.backend.partitions()}
    out = []
    for name, part in center.partitions.items():
        info = infos.get(name)
        out.append(PartitionOut(
            name=name, description=part.description,
            state=info.state if info else "UNKNOWN",
            node_types=[NodeTypeOut(name=nt.name, count=nt.count, cores=nt.cores,
                                    mem=nt.mem, gpus=nt.gpus, gpu_type=nt.gpu_type)
                        for nt in part.node_types],
            total=_tres(part.capacity), allocated=_tres(info.allocated if info else Tres()),
            pending_jobs=info.pending_jobs if info else 0,
            running_jobs=info.running_jobs if info else 0,
            max_time=part.max_time, default_time=part.default_time,
            default=name == center.settings.default_partition))
    return out


@router.get("/status", response_model=StatusOut)
def status(center: CenterDep) -> StatusOut:
    """Liveness and backend reachability (no token needed)."""
    reachable = center.dispatcher.backend_error is None
    error = center.dispatcher.backend_error
    try:
        center.backend.partitions()
    except BackendUnavailable as exc:
        reachable, error = False, exc.message
    with center.factory() as session:
        counts = dict(session.execute(select(Job.state, func.count()).where(
            Job.state.in_(["PENDING", "RUNNING"])).group_by(Job.state)).all())
    return StatusOut(center=center.settings.center_name, version=lightgrid.__version__,
                     backend=center.backend.kind, backend_reachable=reachable,
                     backend_error=error, jobs_pending=counts.get("PENDING", 0),
                     jobs_running=counts.get("RUNNING", 0), process_id=os.getpid())
