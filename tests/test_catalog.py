"""The backend catalog is the one list of backends: every entry resolves to the class it declares, every backend
module is listed, and a backend added as one module + one catalog entry appears in the CLI and the GUI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

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


def test_a_fake_backend_appears_in_the_gui(qtbot, fake_backend: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from PySide6.QtCore import QSettings

    from edgestudio.core.formats import ModelFormat
    from edgestudio.core.workspace import Workspace
    from edgestudio.gui.main_window import MainWindow, _runtimes_for

    ws = Workspace(tmp_path / "ws")
    win = MainWindow(ws, use_webengine=False, settings=QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(win)
    try:
        assert "fakert" in _runtimes_for(ModelFormat.ONNX)  # the compare dialog's runtimes for an ONNX model
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
