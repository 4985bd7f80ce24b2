"""Real runtimes on real models: every runtime that runs a sample, agreement between them, the bench engine."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from edgestudio.backends.runtimes import RUNTIMES, get_runtime, list_devices, runtime_for_format
from edgestudio.bench.inputs import make_inputs, parse_shape_overrides
from edgestudio.bench.latency import BenchConfig, run_benchmark, timed_loop
from edgestudio.bench.stats import LatencyStats
from edgestudio.core.errors import Cancelled, RuntimeUnavailableError, UsageError
from edgestudio.core.formats import ModelFormat
from edgestudio.core.inputspec import InputSpec, resolve_shapes
from edgestudio.core.modelinfo import TensorSpec
from edgestudio.core.progress import CancelToken
from tests.conftest import SAMPLES, softmax_like_zoo, zoo_body, zoo_expected, zoo_params

PAIRS = [("digits_cnn.onnx", "onnxruntime"), ("digits_cnn.onnx", "openvino"), ("digits_cnn.tflite", "litert"),
         ("digits_cnn.tflite", "openvino"), ("digits_cnn.keras", "tensorflow"),
         ("digits_cnn_savedmodel", "tensorflow")]


def test_all_four_runtimes_registered_and_available() -> None:
    assert set(RUNTIMES.all()) >= {"onnxruntime", "openvino", "litert", "tensorflow"}
    # every runtime of this process is installed; those of their own environment (PyTorch, TVM: the environment
    # may not exist yet) and the browser ones may not be
    assert all(cls.available() for name, cls in RUNTIMES.all().items() if cls.env() == "default" and name != "ort-web")


def test_devices_cover_every_runtime() -> None:
    devices = list_devices()
    assert {d.runtime for d in devices} >= {"onnxruntime", "openvino", "litert", "tensorflow", "tfjs-graph"}
    assert all(d.device and d.description for d in devices)
    assert "Azure" not in {d.device for d in devices}


def test_default_runtime_per_format() -> None:
    assert runtime_for_format(ModelFormat.ONNX) == "onnxruntime"
    assert runtime_for_format(ModelFormat.TFLITE) == "litert"
    assert runtime_for_format(ModelFormat.OPENVINO) == "openvino"
    assert runtime_for_format(ModelFormat.KERAS) == "tensorflow"


def test_unknown_runtime_and_device() -> None:
    with pytest.raises(UsageError, match="unknown runtime"):
        get_runtime("tensorrt-nope")
    with pytest.raises(RuntimeUnavailableError, match="no device 'NPU9'"):
        get_runtime("onnxruntime").load(SAMPLES / "digits_cnn.onnx", device="NPU9")


def test_runtimes_agree_on_the_digits(tmp_path: Path) -> None:
    """Every runtime classifies the held-out digits like the Keras reference (same model, other formats)."""
    data = np.load(SAMPLES / "digits_test.npz")
    x, y = data["x"][:64], data["y"][:64]
    preds = {}
    for name, rt in PAIRS:
        sess = get_runtime(rt).load(SAMPLES / name, precision="f32" if rt == "openvino" else None)
        outs = []
        for i in range(len(x)):
            out = sess.run({sess.inputs[0].name: x[i: i + 1]})
            outs.append(next(iter(out.values()))[0])
        preds[(name, rt)] = np.stack(outs)
    ref = preds[("digits_cnn.keras", "tensorflow")]
    assert (ref.argmax(1) == y).mean() > 0.9
    for key, p in preds.items():
        assert np.abs(p - ref).max() < 1e-4, key


def test_make_inputs_follows_spec() -> None:
    specs = [TensorSpec("img", ["batch", 3, "h", "w"], "float32"), TensorSpec("ids", [1, 7], "int64"),
             TensorSpec("mask", [1, 7], "bool")]
    feeds = make_inputs(specs, parse_shape_overrides(["img=2,3,32,48"]))
    assert feeds["img"].shape == (2, 3, 32, 48) and feeds["img"].dtype == np.float32
    assert feeds["ids"].dtype == np.int64 and feeds["mask"].dtype == np.bool_
    # a dynamic dim nothing fixes is an error for a run (it once ran silently at 1x1)...
    with pytest.raises(UsageError, match=r"--shape img=1,3,N,N"):
        make_inputs(specs)
    # ...and a stated default for numerical checks only
    assert make_inputs(specs, dynamic_default=64)["img"].shape == (1, 3, 64, 64)
    np.testing.assert_array_equal(make_inputs(specs, seed=3, dynamic_default=8)["img"],
                                  make_inputs(specs, seed=3, dynamic_default=8)["img"])


def test_shape_override_errors() -> None:
    specs = [TensorSpec("x", ["batch", 8, 8, 1], "float32")]

    def resolve(items: list[str]) -> list[int]:
        return resolve_shapes(specs, InputSpec(shapes=parse_shape_overrides(items)))["x"]

    with pytest.raises(UsageError, match="rank"):
        resolve(["x=1,8,8"])
    with pytest.raises(UsageError, match="conflicts"):
        resolve(["x=1,9,8,1"])
    with pytest.raises(UsageError, match="bad --shape"):
        parse_shape_overrides(["x=1,a"])
    with pytest.raises(UsageError, match=r"not an input of this model \(its inputs: x\)"):
        resolve(["image=1,8,8,1"])
    assert resolve(["4,8,8,1"]) == [4, 8, 8, 1]
    assert resolve(["serving_default_x:0=2,8,8,1"]) == [2, 8, 8, 1]  # names as converters mangle them


def test_latency_stats() -> None:
    s = LatencyStats.from_ms(np.arange(1, 101, dtype=float))
    assert s.min == 1 and s.max == 100 and s.p50 == pytest.approx(50.5) and s.p99 == pytest.approx(99.01)
    assert s.mean == pytest.approx(50.5)


@pytest.mark.parametrize("name,rt", PAIRS, ids=lambda v: str(v))
def test_bench_streams_every_sample(name: str, rt: str) -> None:
    seen: list[tuple[int, float]] = []
    progress: list[float] = []
    cfg = BenchConfig(runtime=rt, iterations=40, warmup=3, threads=1, shapes={"": [4, 8, 8, 1]})
    res = run_benchmark(SAMPLES / name, cfg, on_sample=lambda i, ms: seen.append((i, ms)),
                        progress=lambda f, m="": progress.append(f))
    assert res.iterations == 40 and [i for i, _ in seen] == list(range(40))
    np.testing.assert_allclose([ms for _, ms in seen], res.samples_ms)
    lat = res.latency_ms
    assert 0 < lat.min <= lat.p50 <= lat.p90 <= lat.p95 <= lat.p99 <= lat.max
    assert res.throughput_fps > 0 and res.load_ms > 0 and res.first_inference_ms > 0 and res.peak_rss_mb > 20
    # inferences/s one after another: time in the model, not the harness's streaming between calls
    assert res.throughput_fps == pytest.approx(1000 / float(np.mean(res.samples_ms)), rel=1e-6)
    assert list(res.input_shapes.values()) == [[4, 8, 8, 1]]
    assert progress[-1] == 1.0
    if rt == "openvino":
        assert res.precision in ("f32", "bf16", "f16")


def test_bench_duration_mode() -> None:
    res = run_benchmark(SAMPLES / "digits_cnn.onnx", BenchConfig(runtime="onnxruntime", duration_s=0.3, warmup=1))
    assert res.iterations > 100


def test_timed_loop_cancels() -> None:
    token = CancelToken()
    calls = []

    def call() -> None:
        calls.append(1)
        if len(calls) == 50:
            token.cancel()

    with pytest.raises(Cancelled):
        timed_loop(call, 10_000, cancel=token)
    assert len(calls) < 200


def test_cancel_from_another_thread() -> None:
    token = CancelToken()
    threading.Timer(0.2, token.cancel).start()
    with pytest.raises(Cancelled):
        run_benchmark(SAMPLES / "digits_cnn.onnx", BenchConfig(runtime="onnxruntime", duration_s=30), cancel=token)


@pytest.mark.heavy
@pytest.mark.parametrize("model", zoo_params(), ids=lambda p: p.stem)
@pytest.mark.parametrize("rt", ["onnxruntime", "openvino"])
def test_zoo_models_run_and_match_expected_output(model: Path, rt: str, zoo_dir: Path) -> None:
    """Each zoo graph runs on each runtime; its logits agree with ONNX Runtime's, and their softmax is the
    output stored beside the graph in the onnx wheel."""
    body = zoo_body(model, zoo_dir)
    sess = get_runtime(rt).load(body, precision="f32" if rt == "openvino" else None)
    feeds = make_inputs(sess.inputs)
    logits = next(iter(sess.run(feeds).values()))
    ref = next(iter(get_runtime("onnxruntime").load(body).run(feeds).values()))
    scale = float(np.abs(ref).max())
    np.testing.assert_allclose(logits, ref, rtol=0, atol=1e-4 * max(scale, 1.0))
    expected = zoo_expected(model)
    np.testing.assert_allclose(softmax_like_zoo(model, ref), expected, rtol=1e-3, atol=1e-6)
    res = run_benchmark(model, BenchConfig(runtime=rt, iterations=3, warmup=1))
    assert res.iterations == 3 and res.latency_ms.p50 > 0


def test_comparison_matrix_pairs_each_variant_with_the_runtimes_that_run_it() -> None:
    from edgestudio.backends.runtimes import runtimes_for_format
    from edgestudio.bench.compare import plan_matrix

    # native first; the browser runtime too where a browser is installed
    assert [r for r in runtimes_for_format(ModelFormat.ONNX) if r != "ort-web"] == ["onnxruntime", "openvino"]
    assert runtimes_for_format(ModelFormat.TFLITE) == ["litert", "openvino"]
    onnx, tflite = str(SAMPLES / "digits_cnn.onnx"), str(SAMPLES / "digits_cnn.tflite")
    targets = [("onnxruntime", "CPU"), ("litert", "CPU"), ("openvino", "CPU")]
    planned, skipped = plan_matrix([onnx, tflite], targets, dataset=str(SAMPLES / "digits_test.npz"), iterations=20)
    pairs = [(row["model"], row["runtime"], row["device"]) for row, _ in planned]
    assert pairs == [(onnx, "onnxruntime", "CPU"), (onnx, "openvino", "CPU"), (tflite, "litert", "CPU"),
                     (tflite, "openvino", "CPU")]
    assert skipped == [(onnx, "litert", "CPU"), (tflite, "onnxruntime", "CPU")]
    for row, specs in planned:  # a benchmark and an evaluation per row, on that runtime and device
        assert [s.kind.value for s in specs] == ["bench", "eval"]
        assert {(s.runtime, s.device) for s in specs} == {(row["runtime"], row["device"])}


def test_runtimes_measure_themselves(sample_onnx) -> None:  # type: ignore[no-untyped-def]
    """Runtime.benchmark is the one place a latency is measured (remote and browser runtimes override it)."""
    from edgestudio.backends.runtimes import get_runtime

    rt = get_runtime("onnxruntime")
    sess = rt.load(sample_onnx)
    seen: list[float] = []
    m = rt.benchmark(sess, make_inputs(sess.inputs), iterations=25, warmup=2, on_sample=lambda i, ms: seen.append(ms))
    assert m.samples_ms.shape == (25,) and list(m.samples_ms) == seen and m.first_ms > 0 and m.wall_s > 0
    assert m.wall_s * 1e3 >= float(m.samples_ms.sum()) * 0.99
