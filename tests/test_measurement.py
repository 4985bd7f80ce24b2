"""Measurements a user can trust: warm-up until steady, bootstrap intervals, equal threads by default, the machine
recorded with every result, and the paired round that ranks variants (alternating blocks, ties said)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import SAMPLES, compare_in_studio, run_cli


def test_steady_state_detector_on_known_series() -> None:
    from edgestudio.bench.stats import steady_state

    rng = np.random.default_rng(0)
    warm = np.concatenate([np.linspace(5.0, 1.0, 50), 1 + 0.02 * rng.standard_normal(200)])
    idx = steady_state(warm)
    assert idx is not None and 40 <= idx <= 60  # found where the cold start ends
    assert steady_state(1 + 0.02 * rng.standard_normal(100)) == 0  # steady from the start
    assert steady_state(np.linspace(5.0, 1.0, 300)) is None  # a drift never settles
    assert steady_state([1.0] * 30) is None  # too few samples to say


def test_bootstrap_intervals_cover_and_narrow() -> None:
    from edgestudio.bench.stats import bootstrap_ci, overlaps

    rng = np.random.default_rng(1)
    small = bootstrap_ci(rng.exponential(1.0, 200))
    big = bootstrap_ci(rng.exponential(1.0, 20_000))
    true_median = np.log(2)
    assert big["p50"][0] <= true_median <= big["p50"][1]
    assert big["p50"][1] - big["p50"][0] < small["p50"][1] - small["p50"][0]
    assert big["p50"][1] < big["p90"][0] < big["p99"][0]
    assert bootstrap_ci([1.0, 2.0, 3.0], seed=3) == bootstrap_ci([1.0, 2.0, 3.0], seed=3)
    assert overlaps([1, 2], [1.5, 3]) and not overlaps([1, 2], [2.1, 3])


def test_every_runtime_gets_the_same_threads_and_results_carry_the_machine() -> None:
    from edgestudio.bench.latency import BenchConfig, run_benchmark
    from edgestudio.core.machine import default_threads

    lite = run_benchmark(SAMPLES / "digits_cnn.tflite", BenchConfig(runtime="litert", iterations=50)).to_dict()
    ort = run_benchmark(SAMPLES / "digits_cnn.onnx", BenchConfig(runtime="onnxruntime", iterations=50)).to_dict()
    for d in (lite, ort):  # LiteRT's own default is 1 thread: not here
        assert d["threads"] == default_threads() and d["threads_source"] == "equal default"
        assert d["ci_ms"]["p50"][0] <= d["latency_ms"]["p50"] <= d["ci_ms"]["p50"][1]
        assert d["warmup_runs"] >= 10 and d["steady"] in (True, False)
        assert d["machine"]["cpu"] and d["machine"]["cores"] >= 1 and "isa" in d["machine"]
    one = run_benchmark(SAMPLES / "digits_cnn.tflite", BenchConfig(runtime="litert", iterations=20, threads=1))
    assert one.threads == 1 and one.threads_source == "user"


def _matmul_chain(path: Path, n: int) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((256, 256)).astype(np.float32) * 0.05, "w")
    nodes, prev = [], "x"
    for i in range(n):
        nodes.append(helper.make_node("MatMul", [prev, "w"], [f"h{i}"]))
        prev = f"h{i}"
    graph = helper.make_graph(nodes, "chain", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [64, 256])],
                              [helper.make_tensor_value_info(prev, TensorProto.FLOAT, [64, 256])], [w])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_the_paired_round_ranks_by_alternating_blocks_and_says_what_it_cannot_tell(tmp_path: Path) -> None:
    from edgestudio.bench.paired import LOCAL_ONLY, paired_benchmark

    fast, slow = _matmul_chain(tmp_path / "fast.onnx", 1), _matmul_chain(tmp_path / "slow.onnx", 12)
    r = paired_benchmark([{"model": str(slow), "runtime": "onnxruntime"}, {"model": str(fast), "runtime": "onnxruntime"},
                          {"model": str(fast), "runtime": "ort-web"}], blocks=4, block=30)
    s, f, web = r["variants"]
    assert f["rank"] == 1 and s["rank"] == 2 and not s["tied"] and r["fastest"]["model"] == str(fast)
    assert s["p50_ms"] > 3 * f["p50_ms"] and len(f["block_p50_ms"]) == 4 and f["samples"] == 120
    assert f["ci_ms"][0] <= f["p50_ms"] <= f["ci_ms"][1]
    assert web["error"] == LOCAL_ONLY and "p50_ms" not in web


@pytest.mark.heavy
def test_compare_and_auto_optimize_rank_with_a_paired_round(tmp_path: Path) -> None:
    r = run_cli("compare", str(SAMPLES / "digits_cnn.onnx"), str(SAMPLES / "digits_cnn.tflite"), "--runtime",
                "onnxruntime", "--runtime", "litert", "--iterations", "50", "--json")
    assert r.returncode == 0, r.stderr
    rows = [x for x in json.loads(r.stdout) if x.get("p50_ms") is not None]
    assert len(rows) == 2 and sorted(x["rank"] for x in rows) == [1, 2]
    assert all(x["paired_ci_ms"][0] <= x["paired_p50_ms"] <= x["paired_ci_ms"][1] for x in rows)
    assert [x["rank"] for x in json.loads(r.stdout) if x.get("rank")] == [1, 2]  # listed in the paired order
    r = run_cli("optimize", str(SAMPLES / "digits_cnn.onnx"), "--auto", "--calibration",
                str(SAMPLES / "digits_calib.npz"), "--iterations", "40", "-o", str(tmp_path / "auto"), "--json",
                timeout=600)
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["paired_final"]["blocks"] == 6
    finalists = [c for c in d["candidates"] if c.get("paired_rank")]
    assert len(finalists) >= 2 and d["best"]["paired_rank"] == 1


@pytest.mark.heavy
@pytest.mark.parametrize("flag", ["--no-paired"])
def test_the_paired_round_can_be_skipped(flag: str) -> None:
    r = run_cli("compare", str(SAMPLES / "digits_cnn.onnx"), "--runtime", "onnxruntime", "--runtime", "openvino",
                "--iterations", "30", flag, "--json")
    assert r.returncode == 0, r.stderr
    assert not any(x.get("rank") for x in json.loads(r.stdout))


def test_the_studio_ranks_its_comparison_with_a_paired_round(qtbot, window) -> None:  # type: ignore[no-untyped-def]
    (onnx_id,) = window.import_paths([SAMPLES / "digits_cnn.onnx"])
    (tfl_id,) = window.import_paths([SAMPLES / "digits_cnn.tflite"])
    window.compare([onnx_id, tfl_id], iterations=30, dataset="",
                   targets=[("onnxruntime", "CPU"), ("litert", "CPU")])
    qtbot.waitUntil(lambda: not window._compare and getattr(window, "_paired_job", None) is None
                    and any(r.get("rank") for r in window.comparison.rows), timeout=180_000)
    ranked = sorted((r for r in window.comparison.rows if r.get("rank")), key=lambda r: r["rank"])
    assert [r["rank"] for r in ranked] == [1, 2] and "paired round" in window.comparison.title.text()
    # one figure per row: the paired p50 with its interval (what the bars and the rank stand on), its own run on hover
    table = window.comparison.table
    first = next(i for i in range(table.rowCount()) if table.item(i, 0).text() == "#1")
    assert table.item(first, 3).text() == f"{ranked[0]['paired_p50_ms']:.4g} [{ranked[0]['paired_ci_ms'][0]:.4g}, " \
                                          f"{ranked[0]['paired_ci_ms'][1]:.4g}]"
    assert "own run" in table.item(first, 3).toolTip() and table.item(first, 9).text().startswith("paired round")


def _sweep_file(tmp_path: Path) -> Path:
    path = tmp_path / "sweep.yaml"
    path.write_text(f"""models: [{SAMPLES / 'digits_cnn.onnx'}, {SAMPLES / 'digits_cnn.tflite'}]
runtimes: [onnxruntime, litert]
threads: [1, 2]
iterations: 40
dataset: {SAMPLES / 'digits_test.npz'}
""")
    return path


@pytest.mark.heavy
def test_a_sweep_runs_on_ray_with_the_same_results_as_locally(tmp_path: Path) -> None:
    """4 configurations (2 models x their runtime x 2 thread counts) on a local Ray cluster and on the local pool:
    the same rows, the same accuracy; each benchmark had a node to itself; results are in the workspace."""
    ws = tmp_path / "ws"
    runs = {}
    for executor in ("local", "ray"):
        r = run_cli("sweep", str(_sweep_file(tmp_path)), "--executor", executor, "--workspace", str(ws), "--json",
                    timeout=600)
        assert r.returncode == 0, r.stderr
        runs[executor] = json.loads(r.stdout)
    key = lambda x: (x["model"], x["runtime"], x["threads"])  # noqa: E731
    local, ray = ({key(x): x for x in runs[e]["rows"]} for e in ("local", "ray"))
    assert set(local) == set(ray) and len(local) == 4
    for k in local:
        assert local[k]["accuracy"] == ray[k]["accuracy"] > 0.9 and ray[k]["p50_ms"] > 0 and not ray[k]["error"]
        assert ray[k]["executed_on"]["pid"]  # ran in a Ray worker process
    jobs = json.loads(run_cli("jobs", "--workspace", str(ws), "--json").stdout)
    assert sum(1 for j in jobs if j["status"] == "succeeded") >= 16  # 8 jobs per sweep, recorded as they ended
    bad = tmp_path / "bad.yaml"
    bad.write_text("modles: [x.onnx]\n")
    r = run_cli("sweep", str(bad))
    assert r.returncode != 0 and "models" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.slow  # Ray, faster: test_a_sweep_runs_on_ray_with_the_same_results_as_locally
@pytest.mark.heavy
def test_benchmarks_on_a_two_node_ray_cluster_each_have_a_node_to_themselves() -> None:
    """Two Ray nodes (two raylets on this host, 1 CPU each): 4 benchmarks, never two at once on one node (a task that
    waited on Ray once handed its CPU back and let a second benchmark in), live samples back. (Which nodes Ray picks
    is its own business: SPREAD usually uses both, but a node whose workers are still starting may get none.)"""
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT

    pytest.importorskip("ray")
    r = subprocess.run([sys.executable, "-m", "tests.helpers.ray_two_nodes", str(SAMPLES / "digits_cnn.onnx")],
                       capture_output=True, text=True, timeout=300, cwd=ROOT, env=dict(os.environ))
    assert r.returncode == 0, r.stderr[-3000:]
    d = json.loads(r.stdout.strip().splitlines()[-1])
    runs = d["runs"]
    assert d["nodes"] == 2 and all(x["status"] == "succeeded" for x in runs), runs
    for node in {x["node"] for x in runs}:
        spans = sorted((x["started"], x["finished"]) for x in runs if x["node"] == node)
        assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:])), spans  # one after the other on a node
    assert all(x["samples"] >= 1000 for x in runs)  # every timed run came back live


@pytest.mark.parametrize("runtime,model", [("openvino", "digits_cnn.onnx"), ("onnxruntime", "digits_cnn.onnx"),
                                           ("litert", "digits_cnn.tflite")])
@pytest.mark.heavy
def test_throughput_mode_sweeps_batch_and_streams(runtime: str, model: str) -> None:
    r = run_cli("bench", str(SAMPLES / model), "--runtime", runtime, "--throughput", "--batch", "1,8", "--streams",
                "1,2", "--duration", "0.5", "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    cells = {(c["batch"], c["streams"]): c for c in d["cells"]}
    assert set(cells) == {(1, 1), (1, 2), (8, 1), (8, 2)} and not any(c["error"] for c in cells.values())
    assert all(c["fps"] > 0 and c["requests"] > 0 and c["p50_ms"] > 0 for c in cells.values())
    assert cells[(1, 2)]["threads_per_stream"] * 2 <= max(2, d["cores"])  # the cores are split, not oversubscribed
    for c in cells.values():  # samples/s = requests x batch over the cell's wall time (0.5 s, plus the joins)
        assert c["requests"] * c["batch"] / 1.5 <= c["fps"] <= c["requests"] * c["batch"] / 0.45
    assert d["best"]["fps"] == max(c["fps"] for c in cells.values())
    bad = run_cli("bench", str(SAMPLES / model), "--throughput", "--batch", "0")
    assert bad.returncode == 2 and "--batch values must be >= 1" in bad.stderr


def test_the_studio_shows_the_throughput_heatmap(qtbot, window) -> None:  # type: ignore[no-untyped-def]
    import os

    from tests.conftest import ROOT

    (model_id,) = window.import_paths([SAMPLES / "digits_cnn.onnx"])
    dialog = window.model_action("throughput", model_id)
    qtbot.waitUntil(lambda: dialog.result is not None or "failed" in dialog.status.text(), timeout=120_000)
    assert dialog.result is not None, dialog.status.text()
    assert dialog.table.rowCount() == 6 and "best" in dialog.status.text()
    if os.environ.get("EDGESTUDIO_SHOTS"):
        dialog.grab().save(str(ROOT / "docs" / "screenshots" / "throughput-heatmap.png"))
    dialog.close()


@pytest.mark.slow  # Ray, faster: test_a_sweep_runs_on_ray_with_the_same_results_as_locally
def test_the_studio_runs_a_comparison_on_ray(qtbot, window) -> None:  # type: ignore[no-untyped-def]
    """Run on ▸ Ray: each job a task on a local Ray cluster; the rows fill as the tasks end, the results land in the
    workspace, the paired round ranks them here."""
    (onnx_id,) = window.import_paths([SAMPLES / "digits_cnn.onnx"])
    (tfl_id,) = window.import_paths([SAMPLES / "digits_cnn.tflite"])
    seen: dict[str, int] = {}  # live latency samples of Ray benchmarks, as they ran (through a Ray queue)
    window.live.add_samples = lambda job, samples, _orig=window.live.add_samples: (
        seen.__setitem__(job, seen.get(job, 0) + len(samples)), _orig(job, samples))
    compare_in_studio(qtbot, window, [onnx_id, tfl_id], [("onnxruntime", "CPU"), ("litert", "CPU")], runs=2,
                      run_on="ray", timeout=240_000)
    qtbot.waitUntil(lambda: not window._compare and getattr(window, "_paired_job", None) is None
                    and any(r.get("rank") for r in window.comparison.rows), timeout=240_000)
    rows = [r for r in window.comparison.rows if r.get("p50_ms") is not None]
    assert len(rows) == 2 and all(r["accuracy"] > 0.9 and r["executed_on"]["pid"] for r in rows)
    assert len(seen) == 2 and all(n >= 30 for n in seen.values()), seen  # every timed run, live
    assert sum(1 for j in window.workspace.jobs(limit=50) if j.status.value == "succeeded") >= 4


@pytest.mark.heavy
def test_a_thread_sweep_from_the_cli_and_the_studio(qtbot, window) -> None:  # type: ignore[no-untyped-def]
    """compare --threads 1,2: each variant at each count, ranked together by the paired round at its own count
    (LiteRT at 1 thread is a different variant from LiteRT at 2); the studio's dialog takes the same list and
    draws p50 against threads."""
    import os

    from tests.conftest import ROOT

    r = run_cli("compare", str(SAMPLES / "digits_cnn.tflite"), "--runtime", "litert", "--threads", "1,2",
                "--iterations", "50", "--json")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert sorted(x["threads"] for x in rows) == [1, 2] and all(x["paired_p50_ms"] for x in rows)
    assert {x["rank"] for x in rows} == {1, 2}
    bad = run_cli("compare", str(SAMPLES / "digits_cnn.tflite"), "--threads", "0")
    assert bad.returncode != 0 and "start at 1" in bad.stderr and "Traceback" not in bad.stderr

    (onnx_id,) = window.import_paths([SAMPLES / "digits_cnn.onnx"])
    (tfl_id,) = window.import_paths([SAMPLES / "digits_cnn.tflite"])
    found = compare_in_studio(qtbot, window, [onnx_id, tfl_id], [("onnxruntime", "CPU"), ("litert", "CPU")], runs=4,
                              threads="1,2")
    qtbot.waitUntil(lambda: getattr(window, "_paired_job", None) is None
                    and any(r.get("rank") for r in window.comparison.rows), timeout=240_000)
    rows = [r for r in window.comparison.rows if r.get("p50_ms") is not None]
    assert sorted((r["runtime"], r["threads"]) for r in rows) == [("litert", 1), ("litert", 2), ("onnxruntime", 1),
                                                                    ("onnxruntime", 2)], found
    assert sum(r.get("accuracy") is not None for r in rows) == 2  # accuracy once per variant: threads do not change it
    assert window.comparison.threads_plot.isVisibleTo(window.comparison)
    # the bars show the p50 the ranking stands on (the paired round's), so #1's bar is the lowest
    ranked = [r["ranked_p50_ms"] for r in window.comparison._measured]
    assert [t.toPlainText() for t in window.comparison.bar_labels] == [f"{v:.3g}" for v in ranked]
    assert all(r["ranked_p50_ms"] == r["paired_p50_ms"] for r in rows if r.get("paired_p50_ms") is not None)
    assert ranked == sorted(ranked) or any(r.get("tied") for r in rows)
    assert any("×2" in window.comparison.table.item(i, 2).text() for i in range(window.comparison.table.rowCount()))
    if os.environ.get("EDGESTUDIO_SHOTS"):
        window.comparison.export_figure(ROOT / "docs" / "screenshots" / "thread-sweep.png")
