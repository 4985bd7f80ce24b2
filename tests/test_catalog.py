"""The backend catalog is the one list of backends: every entry resolves to the class it declares, every backend
module is listed, and a backend added as one module + one catalog entry appears in the CLI and the GUI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from edgestudio.core import catalog
from tests.conftest import ROOT, SAMPLES, run_cli

FAKE = textwrap.dedent('''
    """A runtime outside EdgeStudio: one module and one catalog entry."""
    from edgestudio.backends.runtimes.base import RUNTIMES, DeviceInfo, Runtime
    from edgestudio.core.errors import RuntimeUnavailableError
    from edgestudio.core.formats import ModelFormat


    @RUNTIMES.register
    class FakeRuntime(Runtime):
        name = "fakert"
        label = "Fake runtime"
        formats = frozenset({ModelFormat.ONNX})

        def devices(self):
            return [DeviceInfo("fakert", "NPU0", "fake NPU (test extension)"),
                    DeviceInfo("fakert", "NPU1", "second fake NPU")]

        def load(self, path, *, device="CPU", threads=None, precision=None):
            raise RuntimeUnavailableError(path, "the fake runtime runs nothing")
''')


@pytest.fixture
def fake_backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "fakert_mod.py").write_text(FAKE)
    toml = tmp_path / "extra.toml"
    toml.write_text('[[runtime]]\nname = "fakert"\nlabel = "Fake runtime"\nmodule = "fakert_mod"\n'
                    'formats = ["onnx"]\npip = ["fakert"]\nauto = [{label = "Fake FP32"}]\n')
    monkeypatch.setenv("EDGESTUDIO_CATALOG", str(toml))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), str(ROOT)]))
    monkeypatch.syspath_prepend(str(tmp_path))
    return toml


def test_every_entry_resolves_to_what_it_declares() -> None:
    from edgestudio.backends.converters.base import CONVERTERS
    from edgestudio.backends.optimizers.base import OPTIMIZERS
    from edgestudio.backends.runtimes.base import RUNTIMES

    runtimes = RUNTIMES.all()
    for d in catalog.runtimes():
        cls = runtimes[d.name]
        assert {f.value for f in cls.formats} == set(d.formats), d.name
        # a package is a Python runner around the runtime's loader, or a static web folder (browser runtimes)
        assert (cls.package_loader is not None or cls.package_kind == "web") == d.package, d.name
    converters = CONVERTERS.all()
    for c in catalog.converters():
        cls = converters[c.name]
        assert {f.value for f in cls.sources} == set(c.sources) and cls.target.value == c.target, c.name
    optimizers = OPTIMIZERS.all()
    assert set(optimizers) == {o.key for o in catalog.optimizers()}
    for o in catalog.optimizers():
        out = catalog.output_format(o.runtime)
        if out:  # an optimizer's output is its runtime's native format
            assert optimizers[o.key].output_format(optimizers[o.key].sources[0]).value == out


def test_every_backend_module_is_in_the_catalog() -> None:
    listed = {m for kind in ("runtimes", "converters", "optimizers") for m in catalog.modules(kind)}
    for kind in ("runtimes", "converters", "optimizers"):
        for f in (ROOT / "edgestudio" / "backends" / kind).glob("*.py"):
            if f.stem in ("__init__", "base") or f.stem.startswith("_"):
                continue
            assert f"edgestudio.backends.{kind}.{f.stem}" in listed, f


def test_catalog_reads_without_importing_backends() -> None:
    code = ("import sys; from edgestudio.core import catalog; catalog.runtime_names(); catalog.methods();"
            "print(sorted(m for m in sys.modules if m.startswith('edgestudio.backends') or m in "
            "('onnxruntime', 'openvino', 'tensorflow')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.heavy
def test_a_fake_backend_appears_in_the_cli(fake_backend: Path) -> None:
    env = dict(os.environ)
    help_text = subprocess.run([sys.executable, "-m", "edgestudio", "bench", "--help"], capture_output=True,
                               text=True, cwd=ROOT, env=env).stdout
    assert "fakert" in help_text
    devices = json.loads(subprocess.run([sys.executable, "-m", "edgestudio", "devices", "--json"],
                                        capture_output=True, text=True, cwd=ROOT, env=env).stdout)
    assert {(d["runtime"], d["device"]) for d in devices} >= {("fakert", "NPU0"), ("fakert", "NPU1")}
    from edgestudio.core.formats import ModelFormat
    from edgestudio.optimization.auto import candidates

    assert [(c.label, c.runtime) for c in candidates(ModelFormat.ONNX, "fakert")] == [("Fake FP32", "fakert")]


@pytest.mark.heavy
def test_a_fake_backend_appears_in_the_gui(qtbot, fake_backend: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from PySide6.QtCore import QSettings

    from edgestudio.core.formats import ModelFormat
    from edgestudio.core.workspace import Workspace
    from edgestudio.gui.main_window import MainWindow
    from edgestudio.gui.model_actions import runtimes_for

    ws = Workspace(tmp_path / "ws")
    win = MainWindow(ws, use_webengine=False, settings=QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(win)
    try:
        assert "fakert" in runtimes_for(ModelFormat.ONNX)  # the compare dialog's runtimes for an ONNX model
        # the start-up device job runs in a worker process, which reads the same catalog: a second device shows
        qtbot.waitUntil(lambda: any(d["runtime"] == "fakert" for d in win.devices), timeout=60_000)
        assert {d["device"] for d in win.devices if d["runtime"] == "fakert"} == {"NPU0", "NPU1"}
    finally:
        win.shutdown()
        ws.close()


def test_a_bad_catalog_file_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[[runtime]]\nname = 'x'\n")
    r = subprocess.run([sys.executable, "-m", "edgestudio", "devices"], capture_output=True, text=True, cwd=ROOT,
                       env=dict(os.environ, EDGESTUDIO_CATALOG=str(bad)))
    assert r.returncode != 0 and "bad.toml" in r.stderr and "lacks" in r.stderr and "Traceback" not in r.stderr


def test_optimize_forms_and_flags_show_only_what_the_method_reads(qtbot) -> None:  # type: ignore[no-untyped-def]
    """The catalog says which options each (runtime, method) reads: OpenVINO's INT8 form has NNCF's preset and
    no ONNX Runtime calibration options; the CLI refuses a flag the method would ignore."""
    from PySide6.QtWidgets import QWidget

    from edgestudio.gui.optimize_panel import OptimizePanel

    panel = OptimizePanel(None)
    qtbot.addWidget(panel)

    def fields() -> set[str]:
        assert panel.form is not None
        return {w.objectName()[4:] for w in panel.form.findChildren(QWidget) if w.objectName().startswith("opt_")}

    panel.runtime.setCurrentText("openvino")
    panel.method.setCurrentText("int8-static")
    assert fields() == {"subset_size", "preset", "ignored_scope"}
    panel.runtime.setCurrentText("onnxruntime")
    assert panel.method.currentText() == "int8-static"
    assert {"calibration_method", "activation_type", "weight_type"} <= fields() and "preset" not in fields()
    panel.method.setCurrentText("graph-opt")
    assert fields() == {"level"}

    r = run_cli("optimize", str(SAMPLES / "digits_cnn.onnx"), "--method", "int8-static", "--runtime", "openvino",
                "--calibration", "random", "--calibration-method", "entropy")
    assert r.returncode == 2 and "--calibration-method does not apply to int8-static for openvino" in r.stderr
    assert "--subset-size, --preset, --ignore" in r.stderr


REAL = textwrap.dedent('''
    """A real runtime outside EdgeStudio, one module and one catalog entry: ONNX Runtime's CPU provider with one
    thread and every graph optimization off (what a small device build runs)."""
    from edgestudio.backends.runtimes.base import RUNTIMES, DeviceInfo, Runtime
    from edgestudio.backends.runtimes.onnxruntime import OrtSession
    from edgestudio.core.formats import ModelFormat


    @RUNTIMES.register
    class PlainOrt(Runtime):
        name = "plainort"
        label = "Plain ONNX Runtime"
        formats = frozenset({ModelFormat.ONNX})
        requires = ("onnxruntime",)

        def devices(self):
            return [DeviceInfo("plainort", "CPU", "one thread, no graph optimizations")]

        def load(self, path, *, device="CPU", threads=None, precision=None):
            import onnxruntime as ort

            so = ort.SessionOptions()
            so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
            so.intra_op_num_threads = 1
            return OrtSession(ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"]),
                              self.check_device(device))
''')


@pytest.mark.heavy
def test_a_runtime_from_an_extra_catalog_file_works_in_every_engine(tmp_path: Path) -> None:
    """The runtime declares only what every runtime must (devices, load); bench, the paired comparison, throughput,
    auto-optimize (which raised KeyError on a runtime it did not name) and profile (which says it has no profiler)
    take it through the runtime interface and the catalog, in worker processes that read the same catalog file."""
    (tmp_path / "plainort_mod.py").write_text(REAL)
    toml = tmp_path / "extra.toml"
    toml.write_text('[[runtime]]\nname = "plainort"\nlabel = "Plain ONNX Runtime"\nmodule = "plainort_mod"\n'
                    'formats = ["onnx"]\nnative = ["onnx"]\npip = ["onnxruntime"]\nauto = [{label = "Plain FP32"}]\n')
    env = dict(os.environ, EDGESTUDIO_CATALOG=str(toml), PYTHONPATH=os.pathsep.join([str(tmp_path), str(ROOT)]))
    model = str(SAMPLES / "digits_cnn.onnx")
    data = str(SAMPLES / "digits_test.npz")

    def cli(*args: str) -> Any:
        r = subprocess.run([sys.executable, "-m", "edgestudio", *args, "--json"], capture_output=True, text=True,
                           cwd=tmp_path, env=env, timeout=600)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)

    bench = cli("bench", model, "--runtime", "plainort", "--iterations", "30", "--input", data)
    assert bench["runtime"] == "plainort" and bench["latency_ms"]["p50"] > 0
    cmp = cli("compare", model, "--runtime", "plainort", "--runtime", "onnxruntime", "--iterations", "30",
              "--dataset", data)
    rows = cmp if isinstance(cmp, list) else cmp["rows"]
    assert {r["runtime"] for r in rows} == {"plainort", "onnxruntime"}
    assert all(r["error"] is None and r["accuracy"] > 0.9 and r["paired_p50_ms"] > 0 for r in rows), rows
    tp = cli("bench", model, "--runtime", "plainort", "--throughput", "--streams", "1,2", "--input", data)
    assert [c["error"] for c in tp["cells"]] == [None, None] and all(c["fps"] > 0 for c in tp["cells"])
    auto = cli("optimize", model, "--auto", "--runtime", "plainort", "--calibration", data, "--dataset", data, "-o",
               str(tmp_path / "auto"))
    (row,) = auto["candidates"]
    assert row["runtime"] == "plainort" and row["error"] is None and row["p50_ms"] > 0, row
    r = subprocess.run([sys.executable, "-m", "edgestudio", "profile", model, "--runtime", "plainort"],
                       capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert r.returncode == 1 and "profiling runs on onnxruntime, openvino, executorch, not plainort" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


RESCUER = textwrap.dedent('''
    """A runtime outside EdgeStudio whose quantizer can keep layers in float: it declares the rescue capability."""
    from edgestudio.backends.runtimes.base import RUNTIMES, Runtime
    from edgestudio.core.formats import ModelFormat


    @RUNTIMES.register
    class RescuingRuntime(Runtime):
        name = "rescuert"
        label = "Rescuing runtime"
        formats = frozenset({ModelFormat.ONNX})

        def devices(self):
            return []

        def load(self, path, *, device="CPU", threads=None, precision=None):
            raise NotImplementedError

        def rescue_reference(self, parent, work):
            return parent, parent

        def rescue_scope(self, reference, child, item, pairs):
            return [item["node"]]
''')


def test_the_rescue_runs_on_the_runtimes_that_declare_it(fake_backend: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Which runtimes the rescue runs on is each runtime's own capability, read from the registry (no list of names):
    a catalog runtime that implements it is one of them, with its native format's suffix; a runtime without it gets
    one line naming those that have it, before any work starts."""
    from edgestudio.backends.runtimes import RUNTIMES
    from edgestudio.core.errors import UsageError
    from edgestudio.optimization.rescue import rescue, rescue_runtimes, rescue_suffix

    (tmp_path / "rescuert_mod.py").write_text(RESCUER)
    toml = tmp_path / "rescuer.toml"
    toml.write_text('[[runtime]]\nname = "rescuert"\nlabel = "Rescuing runtime"\nmodule = "rescuert_mod"\n'
                    'formats = ["onnx"]\nnative = ["onnx"]\n')
    monkeypatch.setenv("EDGESTUDIO_CATALOG", os.pathsep.join([str(fake_backend), str(toml)]))

    able = rescue_runtimes()
    assert able == [n for n, cls in RUNTIMES.all().items() if cls.can_rescue()]
    assert {"onnxruntime", "openvino", "litert", "rescuert"} <= set(able) and "fakert" not in able
    assert not RUNTIMES.get("fakert").can_rescue() and not RUNTIMES.get("tensorflow").can_rescue()
    assert [rescue_suffix(n) for n in ("onnxruntime", "openvino", "litert", "rescuert")] == [
        ".onnx", ".xml", ".tflite", ".onnx"]

    out = tmp_path / "rescued.onnx"
    for runtime, said in (("fakert", f"the rescue runs on {', '.join(able)}, not fakert"),
                          ("nosuchrt", f"unknown runtime 'nosuchrt': the rescue runs on {', '.join(able)}")):
        with pytest.raises(UsageError) as err:
            rescue(SAMPLES / "digits_cnn.onnx", out, runtime=runtime)
        assert str(err.value) == said and "rescuert" in said and "\n" not in said
    assert not out.exists()
