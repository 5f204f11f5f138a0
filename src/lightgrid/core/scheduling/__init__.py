"""Scheduling policies shared by the embedded backend and the simulator.

Resource amounts are anything with ``+``, ``-``, ``<=`` and ``==`` and a zero: plain
`int` processors in the simulator, `lightgrid.core.resources.Tres` in the backend.
Requests are assumed non-zero. No I/O happens here.
"""

from lightgrid.core.scheduling.conservative import Conservative
from lightgrid.core.scheduling.easy import EASY, shadow_and_extra
from lightgrid.core.scheduling.fcfs import FCFS
from lightgrid.core.scheduling.job import SchedJob
from lightgrid.core.scheduling.policy import (
    F1,
    ORDERS,
    POLICY_NAMES,
    SJF,
    WFP3,
    QueueOrder,
    SchedulingPolicy,
    policy_by_name,
)
from lightgrid.core.scheduling.profile import Profile, estimate_start
from lightgrid.core.scheduling.state import ClusterState

__all__ = [
    "EASY",
    "F1",
    "FCFS",
    "ORDERS",
    "POLICY_NAMES",
    "SJF",
    "WFP3",
    "ClusterState",
    "Conservative",
    "Profile",
    "QueueOrder",
    "SchedJob",
    "SchedulingPolicy",
    "estimate_start",
    "policy_by_name",
    "shadow_and_extra",
]
