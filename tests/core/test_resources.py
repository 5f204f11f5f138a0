"""Normalising requests to TRES, and refusing what no node can ever hold."""

from __future__ import annotations

import pytest

from lightgrid.core.errors import InfeasibleRequest, InvalidRequest
from lightgrid.core.resources import NodeType, Partition, ResourceRequest, Tres, normalize

CPU = Partition("cpu", (NodeType("c", 4, 64, 256 * 1024),))
GPU = Partition("gpu", (NodeType("a", 2, 32, 512 * 1024, 8, "a100"),
                        NodeType("v", 1, 16, 128 * 1024, 4, "v100")))


def test_tres_is_a_vector_with_fits_in() -> None:
    a, b = Tres(2, 100, 1, 0), Tres(4, 100, 1, 1)
    assert a + b == Tres(6, 200, 2, 1) and b - a == Tres(2, 0, 0, 1)
    assert a <= b and not b <= a
    assert not Tres(1, 0, 2, 0) <= Tres(5, 5, 1, 5)  # one component too big
    assert Tres(4, 8192, 2).to_slurm("a100") == "cpu=4,mem=8G,gres/gpu=2,gres/gpu:a100=2"


@pytest.mark.parametrize(("request_", "tres", "nodes"), [
    (ResourceRequest(), Tres(1, 4096, 0, 0), 1),
    (ResourceRequest(ntasks=128), Tres(128, 128 * 4096, 0, 0), 2),
    (ResourceRequest(nodes=2, ntasks=4, cpus_per_task=8), Tres(32, 32 * 4096, 0, 0), 2),
    (ResourceRequest(mem_per_node=1000), Tres(1, 1000, 0, 0), 1),
    (ResourceRequest(ntasks=2, mem_per_cpu=500), Tres(2, 1000, 0, 0), 1),
    (ResourceRequest(mem_per_node=0), Tres(1, 256 * 1024, 0, 0), 1),
    (ResourceRequest(nodes=2, exclusive=True), Tres(128, 512 * 1024, 0, 2), 2),
])
def test_normalize_cpu(request_: ResourceRequest, tres: Tres, nodes: int) -> None:
    alloc = normalize(request_, CPU)
    assert (alloc.tres, alloc.nodes) == (tres, nodes)


def test_gpu_type_picks_the_matching_nodes() -> None:
    alloc = normalize(ResourceRequest(gpus_per_node=4, gpu_type="v100"), GPU)
    assert (alloc.tres.gpu, alloc.gpu_type, alloc.node_type) == (4, "v100", "v")
    any_gpu = normalize(ResourceRequest(gpus_total=16, nodes=2), GPU)
    assert any_gpu.gpus_per_node == 8 and any_gpu.gpu_type == "a100"


@pytest.mark.parametrize(("request_", "field", "message"), [
    (ResourceRequest(cpus_per_task=65), "cpus", "65 CPUs per node"),
    (ResourceRequest(mem_per_node=300 * 1024), "mem", "300G memory per node"),
    (ResourceRequest(nodes=5), "nodes", "5 nodes requested"),
    (ResourceRequest(gpus_per_node=1), "gpus", "1 GPUs per node"),
    (ResourceRequest(gpus_per_node=1, gpu_type="h100"), "gres", "no GPU of type 'h100'"),
])
def test_infeasible_requests_name_the_resource(request_: ResourceRequest, field: str,
                                                message: str) -> None:
    with pytest.raises(InfeasibleRequest, match=message) as info:
        normalize(request_, CPU if request_.gpu_type is None else GPU)
    assert info.value.field == field


def test_gpu_count_beyond_nodes_is_infeasible() -> None:
    with pytest.raises(InfeasibleRequest, match="nodes"):
        normalize(ResourceRequest(gpus_per_node=8, nodes=3), GPU)


@pytest.mark.parametrize("bad", [ResourceRequest(nodes=0), ResourceRequest(ntasks=0),
                                 ResourceRequest(mem_per_cpu=-1)])
def test_nonsense_is_invalid(bad: ResourceRequest) -> None:
    with pytest.raises(InvalidRequest):
        normalize(bad, CPU)
