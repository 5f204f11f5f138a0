"""Trackable resources (TRES), node types and partitions.

A `Tres` is the resource vector the schedulers work over: (cpu, mem in MiB, gpu, node).
It supports `+`, `-` and a component-wise `<=` ("fits in"), the same operations a
plain `int` offers, so one scheduling implementation serves both the embedded backend
(vectors) and the simulator (an int of processors: the one-dimensional case).

The `node` component counts nodes held exclusively; shared-node jobs hold 0 of it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from lightgrid.core.errors import InfeasibleRequest, InvalidRequest


@dataclass(frozen=True, slots=True)
class Tres:
    """A resource vector: cores, memory (MiB), GPUs, exclusive nodes."""

    cpu: int = 0
    mem: int = 0
    gpu: int = 0
    node: int = 0

    def __add__(self, other: Tres) -> Tres:
        return Tres(self.cpu + other.cpu, self.mem + other.mem,
                    self.gpu + other.gpu, self.node + other.node)

    def __sub__(self, other: Tres) -> Tres:
        return Tres(self.cpu - other.cpu, self.mem - other.mem,
                    self.gpu - other.gpu, self.node - other.node)

    def __le__(self, other: Tres) -> bool:
        """Component-wise: every resource of `self` fits in `other`."""
        return (self.cpu <= other.cpu and self.mem <= other.mem
                and self.gpu <= other.gpu and self.node <= other.node)

    def __ge__(self, other: Tres) -> bool:
        return other <= self

    def __lt__(self, other: Tres) -> bool:
        return self <= other and self != other

    def __gt__(self, other: Tres) -> bool:
        return other <= self and self != other

    def scaled(self, factor: int) -> Tres:
        return Tres(self.cpu * factor, self.mem * factor, self.gpu * factor,
                    self.node * factor)

    def to_slurm(self, gpu_type: str | None = None) -> str:
        """Slurm's TRES string, e.g. ``cpu=4,mem=8G,node=1,gres/gpu=2``."""
        parts = [f"cpu={self.cpu}", f"mem={format_mem(self.mem)}"]
        if self.node:
            parts.append(f"node={self.node}")
        if self.gpu:
            parts.append(f"gres/gpu={self.gpu}")
            if gpu_type:
                parts.append(f"gres/gpu:{gpu_type}={self.gpu}")
        return ",".join(parts)

    def as_dict(self) -> dict[str, int]:
        return {"cpu": self.cpu, "mem": self.mem, "gpu": self.gpu, "node": self.node}


ZERO = Tres()


def format_mem(mib: int) -> str:
    """Memory the way Slurm prints it: whole GiB as ``8G``, else ``1536M``."""
    if mib and mib % 1024 == 0:
        return f"{mib // 1024}G"
    return f"{mib}M"


@dataclass(frozen=True, slots=True)
class NodeType:
    """A kind of node in a partition, and how many of them there are."""

    name: str
    count: int
    cores: int
    mem: int  # MiB
    gpus: int = 0
    gpu_type: str | None = None

    def __post_init__(self) -> None:
        if self.count < 1 or self.cores < 1 or self.mem < 1 or self.gpus < 0:
            raise InvalidRequest(f"node type {self.name!r}: count, cores and memory must be "
                                 "positive and gpus not negative", field="node_types")

    @property
    def capacity(self) -> Tres:
        return Tres(self.cores * self.count, self.mem * self.count,
                    self.gpus * self.count, self.count)


@dataclass(frozen=True, slots=True)
class Partition:
    """A named set of nodes with limits, like a Slurm partition."""

    name: str
    node_types: tuple[NodeType, ...]
    max_time: int | None = None  # seconds; None = unlimited
    default_time: int = 3600
    default_mem_per_cpu: int | None = None  # MiB; None = node memory / cores
    description: str = ""

    @property
    def capacity(self) -> Tres:
        total = ZERO
        for nt in self.node_types:
            total = total + nt.capacity
        return total

    @property
    def gpu_types(self) -> set[str]:
        return {nt.gpu_type for nt in self.node_types if nt.gpus and nt.gpu_type}

    def mem_per_cpu_default(self) -> int:
        if self.default_mem_per_cpu:
            return self.default_mem_per_cpu
        return min(nt.mem // nt.cores for nt in self.node_types)


@dataclass(frozen=True, slots=True)
class ResourceRequest:
    """What a job asks for, in Slurm's terms, before normalisation."""

    nodes: int | None = None  # None: as few as the tasks fit on, as Slurm does
    ntasks: int = 1
    cpus_per_task: int = 1
    mem_per_node: int | None = None  # MiB (--mem)
    mem_per_cpu: int | None = None  # MiB (--mem-per-cpu)
    gpus_per_node: int = 0  # --gres=gpu[:type]:N
    gpus_total: int = 0  # --gpus
    gpu_type: str | None = None
    exclusive: bool = False


@dataclass(frozen=True, slots=True)
class Allocation:
    """A normalised request: the TRES a job holds, and its per-node shape."""

    tres: Tres
    nodes: int
    cpus_per_node: int
    mem_per_node: int
    gpus_per_node: int
    gpu_type: str | None = None
    node_type: str | None = field(default=None)

    def billing_dict(self) -> dict[str, int]:
        return self.tres.as_dict() | {"nodes": self.nodes}


def normalize(request: ResourceRequest, partition: Partition) -> Allocation:
    """Turn a request into TRES on `partition`, refusing what no node can ever satisfy.

    Raises `InvalidRequest` for nonsensical values and `InfeasibleRequest` naming the
    resource that exceeds every node type of the partition.
    """
    for name in ("nodes", "ntasks", "cpus_per_task"):
        value = getattr(request, name)
        if value is not None and value < 1:
            raise InvalidRequest(f"{name} must be at least 1", field=name)
    if request.gpus_per_node < 0 or request.gpus_total < 0:
        raise InvalidRequest("GPU count must not be negative", field="gpus")
    if request.mem_per_node is not None and request.mem_per_node < 0:
        raise InvalidRequest("memory must not be negative", field="mem")
    if request.mem_per_cpu is not None and request.mem_per_cpu < 0:
        raise InvalidRequest("memory per CPU must not be negative", field="mem_per_cpu")

    nodes = request.nodes if request.nodes is not None else _min_nodes(request, partition)
    cpus = max(request.ntasks * request.cpus_per_task, nodes)
    cpus_per_node = math.ceil(cpus / nodes)
    # --mem=0 asks for all the memory of each node, as in Slurm.
    whole_node_mem = request.mem_per_node == 0
    if whole_node_mem:
        mem_per_node = 0
    elif request.mem_per_node is not None:
        mem_per_node = request.mem_per_node
    else:
        per_cpu = request.mem_per_cpu or partition.mem_per_cpu_default()
        mem_per_node = per_cpu * cpus_per_node
    if request.gpus_total:
        gpus_per_node = math.ceil(request.gpus_total / nodes)
    else:
        gpus_per_node = request.gpus_per_node
    gpu_type = request.gpu_type

    if gpu_type and gpu_type not in partition.gpu_types:
        known = ", ".join(sorted(partition.gpu_types)) or "none"
        raise InfeasibleRequest(
            f"partition {partition.name!r} has no GPU of type {gpu_type!r} (has: {known})",
            field="gres")

    candidates = [nt for nt in partition.node_types
                  if not gpu_type or nt.gpu_type == gpu_type]
    fitting = [nt for nt in candidates
               if nt.cores >= cpus_per_node and nt.mem >= mem_per_node
               and nt.gpus >= gpus_per_node]
    if not fitting:
        raise InfeasibleRequest(_why_infeasible(partition, candidates, cpus_per_node,
                                                mem_per_node, gpus_per_node),
                                field=_infeasible_field(candidates, cpus_per_node,
                                                        mem_per_node, gpus_per_node))
    available_nodes = sum(nt.count for nt in fitting)
    if nodes > available_nodes:
        raise InfeasibleRequest(
            f"{nodes} nodes requested but partition {partition.name!r} has only "
            f"{available_nodes} nodes that fit the per-node request", field="nodes")
    node_type = min(fitting, key=lambda nt: (nt.cores, nt.mem, nt.gpus))
    if whole_node_mem:
        mem_per_node = node_type.mem
    if request.exclusive:
        cpus_per_node, mem_per_node = node_type.cores, node_type.mem
        gpus_per_node = node_type.gpus
    tres = Tres(cpus_per_node * nodes, mem_per_node * nodes, gpus_per_node * nodes,
                nodes if request.exclusive else 0)
    return Allocation(tres, nodes, cpus_per_node, mem_per_node, gpus_per_node,
                      gpu_type or (node_type.gpu_type if gpus_per_node else None),
                      node_type.name)


def _min_nodes(request: ResourceRequest, partition: Partition) -> int:
    """The fewest nodes that hold all tasks, on the partition's largest node type."""
    cores = max(nt.cores for nt in partition.node_types)
    tasks_per_node = max(1, cores // request.cpus_per_task)
    return max(1, math.ceil(request.ntasks / tasks_per_node))


def _infeasible_field(cands: list[NodeType], cpus: int, mem: int, gpus: int) -> str:
    if not cands or all(nt.cores < cpus for nt in cands):
        return "cpus"
    if all(nt.mem < mem for nt in cands):
        return "mem"
    return "gpus"


def _why_infeasible(partition: Partition, cands: list[NodeType], cpus: int, mem: int,
                    gpus: int) -> str:
    if not cands:
        return f"partition {partition.name!r} has no matching node type"
    max_cores = max(nt.cores for nt in cands)
    max_mem = max(nt.mem for nt in cands)
    max_gpus = max(nt.gpus for nt in cands)
    if cpus > max_cores:
        return (f"{cpus} CPUs per node requested but the largest node in partition "
                f"{partition.name!r} has {max_cores}")
    if mem > max_mem:
        return (f"{format_mem(mem)} memory per node requested but the largest node in "
                f"partition {partition.name!r} has {format_mem(max_mem)}")
    if gpus > max_gpus:
        return (f"{gpus} GPUs per node requested but the largest node in partition "
                f"{partition.name!r} has {max_gpus}")
    return (f"no single node in partition {partition.name!r} has {cpus} CPUs, "
            f"{format_mem(mem)} and {gpus} GPUs together")
