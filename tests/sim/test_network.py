"""Multi-center runs: homes, placement policies, transfer delay, config checking."""

from __future__ import annotations

import pytest

from lightgrid.sim.network import ConfigError, load_network, simulate_network_trace


def _network(tmp_path, placement="home", delay=0, prices=(1.0, 1.0), extra=""):
    (tmp_path / "homes.csv").write_text("# user,center\n1,a\n2,a\n3,a\n")
    cfg = tmp_path / "net.toml"
    cfg.write_text(f'''placement = "{placement}"
home = "user"
mapping = "homes.csv"
transfer_delay = {delay}
{extra}
[[center]]
name = "a"
procs = 10
policy = "easy"
price = {prices[0]}

[[center]]
name = "b"
procs = 10
policy = "conservative"
price = {prices[1]}
''')
    return load_network(cfg)


def _trace(write_swf):
    # Users are ids % 7: jobs 1 and 2 belong to users 1 and 2, both homed at "a".
    return str(write_swf(None, [(1, 0, 100, 10, 100), (2, 1, 10, 10, 10)]))


def _run(path, config):
    rows = {}
    result = simulate_network_trace(path, config,
                                    on_job=lambda i, s, st, e, p, c: rows.__setitem__(i, (st, c)))
    return rows, result


def test_home_keeps_jobs_at_home(tmp_path, write_swf):
    rows, result = _run(_trace(write_swf), _network(tmp_path))
    assert rows == {1: (0, "a"), 2: (100, "a")}
    assert result.total.moved == 0
    assert result.summary()["centers"]["b"]["jobs"] == 0


@pytest.mark.parametrize("placement", ["earliest-start", "least-loaded"])
def test_federation_moves_a_job_to_the_idle_center(tmp_path, write_swf, placement):
    rows, result = _run(_trace(write_swf), _network(tmp_path, placement))
    assert rows == {1: (0, "a"), 2: (1, "b")}
    assert result.total.moved == 1
    assert result.centers["b"].moved == 1
    assert result.summary()["mean_wait"] == 0


def test_transfer_delay_postpones_the_moved_job_and_counts_in_its_wait(tmp_path, write_swf):
    rows, result = _run(_trace(write_swf), _network(tmp_path, "earliest-start", delay=5))
    assert rows == {1: (0, "a"), 2: (6, "b")}
    assert result.summary()["max_wait"] == 5


def test_delay_longer_than_the_home_wait_keeps_the_job_home(tmp_path, write_swf):
    rows, _ = _run(_trace(write_swf), _network(tmp_path, "earliest-start", delay=500))
    assert rows[2] == (100, "a")


def test_cheapest_sends_jobs_to_the_lowest_price(tmp_path, write_swf):
    rows, result = _run(_trace(write_swf), _network(tmp_path, "cheapest", prices=(2.0, 1.0)))
    assert rows == {1: (0, "b"), 2: (100, "b")}
    assert result.total.moved == 2


def test_network_totals_merge_the_centers(tmp_path, write_swf):
    _, result = _run(_trace(write_swf), _network(tmp_path, "earliest-start"))
    s = result.summary()
    assert s["jobs"] == 2
    assert s["utilization"] == pytest.approx((10 * 100 + 10 * 10) / (20 * 100))


def test_config_rejects_unknown_keys(tmp_path):
    with pytest.raises(ConfigError, match="unknown keys"):
        _network(tmp_path, extra="colour = 'red'")


def test_config_rejects_unknown_placement(tmp_path):
    with pytest.raises(ValueError, match="unknown placement"):
        _network(tmp_path, placement="random")
