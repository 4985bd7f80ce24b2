"""Typed job requests: each kind takes its own dataclass; a misspelt option fails at submit, naming it."""

from __future__ import annotations

import pytest

from edgestudio.core.errors import UsageError
from edgestudio.core.jobs import JobKind, JobSpec
from edgestudio.core.requests import BenchRequest, ConvertRequest, parse_request
from edgestudio.app.manager import JobManager
from tests.conftest import SAMPLES


def test_a_spec_is_a_kind_and_its_typed_request() -> None:
    spec = JobSpec.of(BenchRequest(iterations=7, threads=2), model="m.onnx", runtime="onnxruntime")
    assert spec.kind is JobKind.BENCH and spec.options["iterations"] == 7
    again = JobSpec.from_json(spec.to_json())  # what travels on pipes, sockets and into the workspace
    assert again.request == BenchRequest(iterations=7, threads=2)
    assert parse_request("convert", {"to": "onnx"}) == ConvertRequest(to="onnx")


def test_unknown_or_missing_options_are_refused_naming_them() -> None:
    with pytest.raises(UsageError, match=r"a bench job does not take 'iteratons' \(it takes: iterations, warmup"):
        JobSpec(JobKind.BENCH, model="m.onnx", options={"iteratons": 5}).validate()
    with pytest.raises(UsageError, match="needs a target format"):
        JobSpec(JobKind.CONVERT, model="m.onnx", options={}).validate()
    with pytest.raises(UsageError, match="needs a dataset"):
        JobSpec(JobKind.EVAL, options={"limit": 3}).validate()


def test_the_manager_refuses_a_bad_request_before_it_reaches_a_worker() -> None:
    mgr = JobManager(max_workers=1)
    try:
        with pytest.raises(UsageError, match="does not take 'iters'") as info:
            mgr.submit(JobSpec(JobKind.BENCH, model=str(SAMPLES / "digits_cnn.onnx"), options={"iters": 1}))
        assert info.value.one_line().startswith(str(SAMPLES / "digits_cnn.onnx"))
        assert mgr.history() == []
    finally:
        mgr.shutdown()


def test_unknown_keys_are_refused_at_every_depth() -> None:
    """A job's nested options (conversion, optimization, the input specification) and the job itself refuse a key
    they do not take, naming it: they used to drop it silently (a misspelt 'calibraton' ran with none)."""
    from edgestudio.backends.converters.base import ConvertOptions
    from edgestudio.backends.optimizers.base import OptimizeOptions
    from edgestudio.core.inputspec import InputSpec

    with pytest.raises(UsageError, match="conversion options does not take 'opst'"):
        ConvertOptions.from_dict({"opset": 17, "opst": 18})
    with pytest.raises(UsageError, match="optimization options does not take 'calibraton'"):
        OptimizeOptions.from_dict({"calibraton": "x.npz"})
    with pytest.raises(UsageError, match="an input specification does not take 'shape'"):
        InputSpec.from_dict({"shape": {"x": [1, 3]}})
    with pytest.raises(UsageError, match="a job does not take 'modle'"):
        JobSpec.from_dict({"kind": "bench", "modle": "m.onnx"})
    assert ConvertOptions.from_dict({"opset": 17}).opset == 17  # known keys still read
