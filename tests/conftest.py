from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
# every job result is held to its kind's type (edgestudio/jobs/results.py): a mismatch fails the job in the tests
os.environ.setdefault("EDGESTUDIO_STRICT_RESULTS", "1")
# the studio remembers the models a user trusted in a file of the user's: tests keep one of their own (removed
# when the session ends), one per process: `make test` runs two pytest workers (xdist), which inherit the
# controller's environment, and one worker's trusted model must not be trusted in the other's tests
if "EDGESTUDIO_TRUST_FILE" not in os.environ or os.environ.get("EDGESTUDIO_TEST_TRUST_PID") not in (None, str(os.getpid())):
    import atexit
    import shutil
    import tempfile

    _trust = tempfile.mkdtemp(prefix="edgestudio-trust-")
    atexit.register(shutil.rmtree, _trust, True)
    os.environ["EDGESTUDIO_TRUST_FILE"] = os.path.join(_trust, "trusted-models.txt")
    os.environ["EDGESTUDIO_TEST_TRUST_PID"] = str(os.getpid())

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "resources" / "samples"
ENVS = ROOT / ".cache" / "envs"  # the catalog's Python environments, made once by the tests that need them


def ensure_env(name: str, *requirements: str, timeout: int = 2400) -> Path:
    """The Python environment ``name`` in ``.cache/envs`` (created with ``requirements``, else the catalog's, when
    missing); its interpreter. Two pytest workers that need the same one take turns: the second finds it made."""
    import fcntl

    ENVS.mkdir(parents=True, exist_ok=True)
    with open(ENVS / f".{name}.test-lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (ENVS / name / "env.json").is_file():
            r = subprocess.run([sys.executable, "-m", "edgestudio", "envs", "create", name, *requirements, "--json"],
                               capture_output=True, text=True, cwd=ROOT, timeout=timeout,
                               env=dict(os.environ, EDGESTUDIO_ENVS=str(ENVS)))
            assert r.returncode == 0, r.stderr
    return ENVS / name / "bin" / "python"

# ------------------------------------------------------------------------------------------- test loops
# `make test` runs everything but the `slow` tests: long end-to-end ones whose path a faster test of `make test`
# also takes (their marker says which). EDGESTUDIO_SLOW=1 runs them (`make test-slow`).
SLOW = os.environ.get("EDGESTUDIO_SLOW", "") not in ("", "0")
# `make test-fast` (-m "not slow and not heavy") runs the unit and in-process tests. `heavy` is marked on a test, or
# given here to the tests of these modules and to those using these fixtures: they run jobs through the CLI or other
# processes, a Python environment, a browser, Ray, the real-model corpus, the studio with its jobs, or take seconds.
HEAVY_MODULES = frozenset({
    "test_agent", "test_agent_hostile",  # the device agent, in its environment
    "test_torch", "test_tvm",  # the torch and tvm environments
    "test_web", "test_netron",  # Chromium, QtWebEngine
    "test_real_models",  # the real-model corpus
    "test_gui", "test_gui_envs", "test_gui_trust", "test_studio_pass2", "test_studio_pass3",  # the studio's jobs
    "test_studio_pass3b",
    "test_cli", "test_user_folder", "test_workspace_shared", "test_fuzz", "test_hostile",  # the CLI's processes
    "test_layers", "test_seed_path", "test_packaging",  # the CLI, a fresh venv
})
HEAVY_FIXTURES = frozenset({"window", "device_python", "ort_env", "torch_env", "tvm_env", "litert_torch_env",
                            "executorch_env"})


@pytest.hookimpl(tryfirst=True)  # the markers are given before `-m` selects on them
def pytest_collection_modifyitems(config, items):  # type: ignore[no-untyped-def]
    skip_slow = pytest.mark.skip(reason="slow: runs with EDGESTUDIO_SLOW=1 (make test-slow)")
    for item in items:
        module = getattr(item, "module", None)
        if (module is not None and module.__name__.rpartition(".")[2] in HEAVY_MODULES) \
                or HEAVY_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.heavy)
        if not SLOW and item.get_closest_marker("slow") is not None:
            item.add_marker(skip_slow)


#: a job's staging folder beside its output (``.NAME.partial-JOB``, execution/pool.staging_folder): a job whose output
#: defaults beside a sample has one there while it runs. Under two pytest workers one worker's test sees the other's
#: come and go, so there each test's check leaves them out (a run in one process, TEST_WORKERS=0, checks them too).
PARALLEL = bool(os.environ.get("PYTEST_XDIST_WORKER"))


def _listing(folder: Path, *, staging: bool = True) -> dict[str, tuple[int, int]]:
    import re

    out = {}
    for p in folder.rglob("*"):
        rel = str(p.relative_to(folder))
        if not staging and re.search(r"(^|/)\.[^/]+\.partial-", rel):
            continue
        try:
            if p.is_file() or p.is_dir():
                out[rel] = (p.stat().st_size, p.stat().st_mtime_ns)
        except OSError:  # gone while listed (another worker's staging folder)
            continue
    return out


@pytest.fixture(autouse=True)
def resources_stay_untouched():  # type: ignore[no-untyped-def]
    """Nothing may write into resources/ (the shipped samples): every test is checked before and after."""
    before = _listing(ROOT / "resources", staging=not PARALLEL)
    yield
    after = _listing(ROOT / "resources", staging=not PARALLEL)
    added = sorted(set(after) - set(before))
    changed = sorted(k for k in set(after) & set(before) if after[k] != before[k] and not Path(k).suffix == "")
    assert not added and not changed and set(before) <= set(after), (
        f"this test wrote into resources/: added {added[:5]}, changed {changed[:5]}, "
        f"removed {sorted(set(before) - set(after))[:5]}")


def zoo_models() -> list[Path]:
    import onnx

    light = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
    return sorted(light.glob("light_*.onnx"))


# The large zoo graphs add only compute: every op type of theirs (LRN, BatchNormalization, Sum/Add, Concat, Gemm,
# grouped Conv, ...) is in the four small ones (inception_v1/v2, shufflenet, squeezenet). Their parameters are slow.
BIG_ZOO = ("light_bvlc_alexnet", "light_densenet121", "light_resnet50", "light_vgg19", "light_zfnet512")


def zoo_params(fast: tuple[str, ...] | None = None) -> list:  # type: ignore[type-arg]
    """The zoo graphs as test parameters: those not in ``fast`` (by default: the BIG_ZOO ones) marked slow."""
    if fast is None:
        fast = tuple(m.stem for m in zoo_models() if m.stem not in BIG_ZOO)
    return [m if m.stem in fast else pytest.param(m, marks=pytest.mark.slow) for m in zoo_models()]


_BODIES: dict[Path, Path] = {}


def zoo_body(model: Path, folder: Path) -> Path:
    """The zoo graph without its final Softmax.

    The "light" zoo models make their weights with constant fills, which drives their logits to ~1e10 and
    nearly equal: softmax then turns any 1e-7 relative difference between two runtimes into a different
    argmax. Parity is meaningful on the logits (relative tolerance); softmax is checked separately.
    """
    import onnx
    from onnx import TensorProto, helper

    if model in _BODIES:
        return _BODIES[model]
    m = onnx.load(str(model))
    last = m.graph.node[-1]
    if last.op_type != "Softmax":
        _BODIES[model] = model
        return model
    del m.graph.node[-1]
    del m.graph.output[:]
    m.graph.output.append(helper.make_tensor_value_info(last.input[0], TensorProto.FLOAT, None))
    out = folder / f"{model.stem}_body.onnx"
    onnx.save(m, str(out))
    _BODIES[model] = out
    return out


def zoo_expected(model: Path):  # type: ignore[no-untyped-def]
    import onnx
    from onnx import numpy_helper

    t = onnx.TensorProto()
    t.ParseFromString(model.with_name(model.stem + "_output_0.pb").read_bytes())
    return numpy_helper.to_array(t)


def softmax_like_zoo(model: Path, logits):  # type: ignore[no-untyped-def]
    """Apply the zoo model's final Softmax (opset 9: over everything after axis 1) in float64."""
    import numpy as np

    if zoo_body(model, Path("/nonexistent")) == model:
        return logits
    flat = np.asarray(logits, np.float64).reshape(logits.shape[0], -1)
    e = np.exp(flat - flat.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True)).reshape(logits.shape)


@pytest.fixture(scope="session")
def zoo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("zoo")


@pytest.fixture(scope="session")
def samples() -> Path:
    return SAMPLES


@pytest.fixture(scope="session")
def sample_onnx() -> Path:
    return SAMPLES / "digits_cnn.onnx"


@pytest.fixture(scope="session")
def sample_tflite() -> Path:
    return SAMPLES / "digits_cnn.tflite"


@pytest.fixture(scope="session")
def sample_keras() -> Path:
    return SAMPLES / "digits_cnn.keras"


@pytest.fixture(scope="session")
def sample_savedmodel() -> Path:
    return SAMPLES / "digits_cnn_savedmodel"


@pytest.fixture(scope="session")
def sample_ir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ONNX sample converted to OpenVINO IR with the real converter."""
    import openvino as ov

    out = tmp_path_factory.mktemp("ir") / "digits_cnn.xml"
    model = ov.convert_model(str(SAMPLES / "digits_cnn.onnx"))
    ov.save_model(model, str(out), compress_to_fp16=False)
    return out


@pytest.fixture(scope="session")
def sample_h5(tmp_path_factory: pytest.TempPathFactory, sample_keras: Path) -> Path:
    from edgestudio.core.formats import ModelFormat
    from edgestudio.core.loaders import load_keras_model

    out = tmp_path_factory.mktemp("h5") / "digits_cnn.h5"
    load_keras_model(sample_keras, ModelFormat.KERAS).save(out)
    return out


@pytest.fixture(scope="session")
def lambda_keras(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Keras model with a Lambda layer: loading it would run arbitrary code."""
    import keras

    inp = keras.Input((4,))
    out = keras.layers.Lambda(lambda t: t * 2.0)(inp)
    path = tmp_path_factory.mktemp("lambda") / "lambda.keras"
    keras.Model(inp, out).save(path)
    return path


@pytest.fixture
def window(qtbot, tmp_path: Path):  # type: ignore[no-untyped-def]
    """The studio on a fresh workspace, shown offscreen, with settings of its own; shut down after the test."""
    from PySide6.QtCore import QSettings

    from edgestudio.core.workspace import Workspace
    from edgestudio.gui.main_window import MainWindow

    ws = Workspace(tmp_path / "ws")
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    win = MainWindow(ws, use_webengine=False, settings=settings)
    qtbot.addWidget(win)
    win.show()
    yield win
    win.shutdown()
    ws.close()


def run_cli(*args: str, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    """Run the real command line in a fresh process."""
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    return subprocess.run([sys.executable, "-m", "edgestudio", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=ROOT)


def convert_in_wizard(qtbot, window, model_id: int, target: object, timeout: int = 120_000):  # type: ignore[no-untyped-def]
    """Open the conversion wizard on ``model_id``, tick ``target`` (a ModelFormat), run it with the default options
    and wait until every job has ended; the wizard."""
    wizard = window.model_action("convert", model_id)
    qtbot.addWidget(wizard)
    wizard.next()
    wizard.target_page.boxes[target].setChecked(True)
    wizard.next()
    wizard.next()
    wizard.next()
    qtbot.waitUntil(lambda: wizard.run_page.isComplete(), timeout=timeout)
    return wizard


def compare_in_studio(qtbot, window, model_ids: list[int], targets: list[tuple[str, str]], *, runs: int,  # type: ignore[no-untyped-def]
                      run_on: str = "local", timeout: int = 300_000, threads: str | None = None
                      ) -> list[dict]:  # type: ignore[type-arg]
    """Open the studio's comparison dialog on ``model_ids`` x ``targets`` (the dialog must count ``runs`` runs) with
    the digits test split and 30 iterations, run it (``run_on``: local or ray; ``threads``: a sweep such as "1,2")
    and wait until every row's jobs have ended; the rows."""
    dialog = window.model_action("compare", model_ids[0])
    dialog.set_checked(model_ids, targets)
    if threads is not None:  # a thread sweep, typed as a user would
        dialog.threads.setEditText(threads)
    assert dialog.run_count()[0] == runs
    dialog.run_on.setCurrentIndex(dialog.run_on.findData(run_on))
    dialog.dataset.setText(str(SAMPLES / "digits_test.npz"))
    dialog.iterations.setValue(30)
    dialog.run_button.click()
    qtbot.waitUntil(lambda: window.comparison.rows and not window._compare, timeout=timeout)
    return list(window.comparison.rows)


_SESSION_START = __import__("time").time()


def pytest_sessionfinish(session, exitstatus):  # type: ignore[no-untyped-def]
    """TensorFlow's autograph leaves __autograph_generated_file*.py in the temp folder: remove the session's."""
    import glob
    import tempfile

    for f in glob.glob(os.path.join(tempfile.gettempdir(), "__autograph_generated_file*.py")):
        try:
            if os.path.getmtime(f) >= _SESSION_START:
                os.unlink(f)
        except OSError:
            pass
