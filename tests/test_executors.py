"""The national batch on other executors than a process pool (issue 13.5): threads in one process, which share
durable_rules' Host, and a Dask LocalCluster through `Client.get_executor()`.

Expected totals are hand arithmetic from the generator's figures (`test_batch.expected_total_cents`), never a run
of the code under test.
"""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

import pytest

from allocation.rulefiles import engine
from allocation.ops import synth
from allocation.ops.batch import run_batch
from allocation.rulefiles.conditions import All, Cmp
from allocation.core.problems import ExitCode, Location
from test_batch import expected_total_cents

DISTRICTS, SCALE = 6, 0.05  # 6 districts × 2 municipalities × 20 items: several chunks of facts in flight


@pytest.fixture(scope="module")
def country_dir(tmp_path_factory) -> tuple[Path, Path]:
    return synth.write_country(tmp_path_factory.mktemp("country"), scale=SCALE, districts=DISTRICTS)


def _check(result, output: Path) -> None:
    districts = synth.country(SCALE, districts=DISTRICTS).districts
    assert result.exit_code == ExitCode.OK, [r.problems for r in result.results if r.exit_code]
    assert [r.district for r in result.results] == [d.name for d in districts]
    assert [r.total_cents for r in result.results] == [expected_total_cents(d) for d in districts]
    assert len(list(output.glob("*-ergebnis.xlsx"))) == DISTRICTS


def test_batch_on_a_thread_pool_gives_every_district_its_own_figures(country_dir, tmp_path):
    inputs, rules = country_dir
    with ThreadPoolExecutor(max_workers=4) as pool:
        result = run_batch(inputs, tmp_path / "out", rules, executor=pool)
        assert pool.submit(int, "7").result() == 7  # the caller's executor is left running
    _check(result, tmp_path / "out")


def test_engine_decides_concurrent_calls_from_threads_like_serial_ones():
    """Eight threads share one durable_rules Host; each must get exactly its own conditions' answers."""
    records = [{"x": Decimal(n), "t": "a" if n % 2 else "b"} for n in range(200)]

    here = Location("test")

    def conditions(k: int) -> dict:
        return {"small": Cmp("x", "lt", Decimal(10 * k), here),
                "odd_big": All((Cmp("t", "eq", "a", here), Cmp("x", "ge", Decimal(20 * k), here)), here)}

    def expected(k: int) -> list[frozenset[str]]:  # by hand from the definitions above
        return [frozenset({name for name, holds in (("small", n < 10 * k), ("odd_big", n % 2 == 1 and n >= 20 * k))
                           if holds}) for n in range(200)]

    barrier = threading.Barrier(8)

    def work(k: int) -> list[frozenset[str]]:
        barrier.wait()
        return [engine.match(conditions(k), records) for _ in range(5)]

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(work, range(1, 9)))
    for k, runs in zip(range(1, 9), answers):
        assert all(run == expected(k) for run in runs), k


def test_batch_on_a_dask_local_cluster(country_dir, tmp_path):
    pytest.importorskip("dask", reason="Dask is not installed: pip install -e '.[dask]' to run the batch on a "
                                       "Dask LocalCluster")
    distributed = pytest.importorskip("distributed", reason="dask.distributed is not installed: pip install -e "
                                                            "'.[dask]'")
    inputs, rules = country_dir
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with distributed.Client(cluster) as client:
            result = run_batch(inputs, tmp_path / "out", rules, executor=client.get_executor())
    _check(result, tmp_path / "out")
