"""The one job runner (edgestudio.jobs.runner) and placement (edgestudio.execution.placement): every worker loop ends
a job the same way, and only placement decides where a job runs."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from edgestudio.core.jobs import JobKind, JobSpec
from edgestudio.core.progress import CancelToken
from edgestudio.jobs.messages import JobMessage
from edgestudio.jobs.runner import run_one
from tests.conftest import ROOT, SAMPLES

MODEL = str(SAMPLES / "digits_cnn.onnx")


def _run(spec: JobSpec | dict, **kw: object) -> tuple[JobMessage, list[JobMessage]]:
    sent: list[JobMessage] = []
    outcome = run_one("j1", spec, sent.append, CancelToken(), None, **kw)  # type: ignore[arg-type]
    return outcome.message, sent


def test_a_job_runs_and_its_progress_goes_out_as_it_happens() -> None:
    end, sent = _run(JobSpec(JobKind.INSPECT, model=MODEL))
    assert end.type == "done" and end.job_id == "j1" and end.data["result"]["format"] == "onnx"
    assert [m.type for m in sent][-1] == "progress" and sent[-1].data["fraction"] == 1.0


def test_a_failure_is_one_line_naming_the_model_and_the_loop_keeps_serving(tmp_path: Path) -> None:
    bad = tmp_path / "not_a_model.onnx"
    bad.write_bytes(b"\x00garbage")
    outcome = run_one("j2", JobSpec(JobKind.INSPECT, model=str(bad)).to_dict(), lambda m: None, CancelToken())
    assert outcome.status == "failed" and not outcome.stop
    assert str(bad) in outcome.message.data["error"] and "\n" not in outcome.message.data["error"]
    assert outcome.message.data["log"]  # the traceback's last lines go to the job's log, not into the error


def test_a_request_with_an_unknown_option_fails_as_a_job_never_as_the_worker() -> None:
    spec = JobSpec(JobKind.BENCH, model=MODEL).to_dict()
    spec["options"] = {"iterations": 3, "iteratoins": 5}
    end, _ = _run(spec)
    assert end.type == "failed" and "iteratoins" in end.data["error"]


def test_cancelled_and_tagged_results() -> None:
    from edgestudio.core.errors import Cancelled

    def cancelled(spec: JobSpec, ctx: object) -> dict:
        raise Cancelled()

    assert _run(JobSpec(JobKind.INSPECT, model=MODEL), run=cancelled)[0].type == "cancelled"
    end, _ = _run(JobSpec(JobKind.INSPECT, model=MODEL), tag=lambda r: {**r, "executed_by": {"python": "p"}})
    assert end.data["result"]["executed_by"] == {"python": "p"}

    def interrupted(spec: JobSpec, ctx: object) -> dict:
        raise KeyboardInterrupt

    outcome = run_one("j3", JobSpec(JobKind.INSPECT, model=MODEL), lambda m: None, CancelToken(), run=interrupted)
    assert outcome.status == "failed" and outcome.stop


def test_a_job_for_a_remote_device_that_makes_a_file_is_refused_by_placement() -> None:
    from edgestudio.core.errors import UsageError
    from edgestudio.execution.placement import run_placed
    from edgestudio.jobs.context import JobContext

    spec = JobSpec(JobKind.CONVERT, model=MODEL, device="CPU@agent:pi", options={"to": "openvino"}, output="x.xml")
    with pytest.raises(UsageError, match="make the variant here"):
        run_placed(spec, JobContext("j4", lambda m: None, CancelToken(), None))


LOOPS = ("edgestudio/execution/pool_worker.py", "edgestudio/execution/env_worker.py",
         "edgestudio/execution/ray_executor.py")


def _calls(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Call):
            f = node.func
            out.add(f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else "")
    return out


def test_every_worker_loop_uses_the_one_runner_with_placement() -> None:
    """The local pool's workers, an environment's worker and a Ray task (a device agent runs environment workers)
    all run their jobs with run_one and placement; nothing else outside placement calls the job functions."""
    for loop in LOOPS:
        src = (ROOT / loop).read_text("utf-8")
        assert "run_one" in _calls(ROOT / loop) and "run=run_placed" in src, loop
    callers = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "edgestudio").rglob("*.py")
                     if p.parent.name != "jobs" and _uses_the_job_functions(p))
    assert callers == ["edgestudio/execution/placement.py"], callers


def _uses_the_job_functions(path: Path) -> bool:
    """Imports edgestudio.jobs.tasks (its run_job or a run_<kind>)."""
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.ImportFrom) and (node.module == "edgestudio.jobs.tasks" or (
                node.module == "edgestudio.jobs" and any(a.name == "tasks" for a in node.names))):
            return True
    return False


def test_a_job_names_where_it_runs_as_a_target_and_a_remote_device_becomes_one() -> None:
    """Users name a device agent's device CPU@agent:pi; the spec keeps device and target apart (placement routes on
    the target), and gives the users' name back for lists and rows."""
    from edgestudio.core.errors import UsageError

    spec = JobSpec(JobKind.BENCH, model=MODEL, device="CPU@agent:pi")
    assert (spec.device, spec.target, spec.agent, spec.env, spec.where) == ("CPU", "agent:pi", "pi", None, "CPU@agent:pi")
    assert JobSpec.from_dict(spec.to_dict()) == spec
    assert JobSpec(JobKind.BENCH, model=MODEL, target="env:torch").env == "torch"
    for bad in ("ray", "env:", "pi"):
        with pytest.raises(UsageError, match="unknown job target"):
            JobSpec(JobKind.BENCH, model=MODEL, target=bad)
    with pytest.raises(UsageError, match="on agent pi, but the job's target is env:x"):
        JobSpec(JobKind.BENCH, model=MODEL, device="GPU@agent:pi", target="env:x")


def test_a_job_sent_to_an_environment_that_does_not_exist_says_so(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGESTUDIO_ENVS", str(tmp_path / "envs"))
    end, _ = _run(JobSpec(JobKind.BENCH, model=MODEL, target="env:nosuch", options={"iterations": 3}),
                  run=__import__("edgestudio.execution.placement", fromlist=["run_placed"]).run_placed)
    assert end.type == "failed" and "'nosuch' Python environment" in end.data["error"], end.data
    assert "edgestudio envs create nosuch" in end.data["error"]


def test_job_events_are_typed() -> None:
    from edgestudio.core.jobs import JobEvent

    assert JobEvent("j", "progress", {"fraction": 0.5, "message": "m"}).data["fraction"] == 0.5
    with pytest.raises(ValueError, match="a log job event takes line, not lines"):
        JobEvent("j", "log", {"lines": ["x"]})
    with pytest.raises(ValueError, match="unknown job event type 'finish'"):
        JobEvent("j", "finish", {})


def test_a_result_that_does_not_match_its_type_fails_in_the_tests_and_is_said_otherwise(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Results are typed (edgestudio.jobs.results): a key a kind's type does not declare, at any depth it types, is
    refused; the tests run strict, so every job of the suite holds to its type."""
    from edgestudio.jobs.results import ConvertResult, typed_result

    spec = JobSpec(JobKind.INSPECT, model=MODEL)
    end, _ = _run(spec, tag=lambda r: {**r, "where": "here"})
    assert end.type == "failed" and "inspect result does not take 'where'" in end.data["error"], end.data
    monkeypatch.setenv("EDGESTUDIO_STRICT_RESULTS", "0")
    end, sent = _run(spec, tag=lambda r: {**r, "where": "here"})
    assert end.type == "done" and any("does not take 'where'" in m.data.get("line", "") for m in sent)

    conv = JobSpec(JobKind.CONVERT, model=MODEL, options={"to": "openvino"}, output="x.xml")
    step = {"from": "onnx", "to": "openvino", "converter": "ovc", "output": "x.xml", "seconds": 1, "parity": None}
    good = {"output": "x.xml", "steps": [step], "seconds": 1.5, "verdict": "passed", "model_ids": [3]}
    typed = typed_result(conv, good)
    assert isinstance(typed.body, ConvertResult) and typed.body.steps[0].source == "onnx"
    assert typed.body.steps[0].seconds == 1.0 and typed.envelope.model_ids == [3]
    for bad, said in (({**good, "steps": [{**step, "frm": 1}]}, "convert result.steps[0] does not take 'frm'"),
                      ({**good, "seconds": "1"}, "convert result.seconds must be float"),
                      ({**good, "steps": [{k: v for k, v in step.items() if k != "to"}]},
                       "convert result.steps[0] lacks 'to'")):
        with pytest.raises(ValueError, match=said.replace(".", r"\.").replace("[", r"\[").replace("]", r"\]")):
            typed_result(conv, bad)
