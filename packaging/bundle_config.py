"""What goes into the PyInstaller bundle: one place, plain Python, checked by the tests without PyInstaller.

``full`` carries TensorFlow (Keras/SavedModel conversion, TFLite quantization); ``lite`` leaves it out and
still converts ONNX/TFLite -> OpenVINO, ONNX -> ORT, quantizes for ONNX Runtime and OpenVINO, and
benchmarks ONNX Runtime, OpenVINO and LiteRT.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NAME = "edgestudio"

# package -> why it is collected whole (data files, plugins, lazily imported modules)
COLLECT_ALL = {
    "edgestudio": "backends are imported by name from the catalog at run time",
    "openvino": "no PyInstaller hook exists: plugins (CPU/AUTO/HETERO), frontends, libtbb, cache.json",
    "ai_edge_litert": "the LiteRT interpreter's shared libraries and schema",
    "litert_quantizer": "LiteRT Quantizer (its recipes and schema files)",
    "netron": "the viewer's static files, served offline",
    "pyqtgraph": "chart modules imported by name",
    "superqt": "Qt utilities",
    "tflite_micro": "the real TensorFlow Lite Micro interpreter (package --tflm measures the arena in it)",
}
COLLECT_ALL_FULL = {
    "tensorflow": "Keras/SavedModel conversion and TFLite quantization",
    "tensorflowjs": "Keras/SavedModel -> TF.js (its op lists are data files read at conversion)",
    "tf2onnx": "TensorFlow -> ONNX",
    "keras": "Keras models",
    "tf_keras": "onnx2tf builds its layers with Keras 2 (tf_keras), whose modules it imports by name",
}
# packages whose own .py files must exist on disk in the bundle: they read or path-import them
WITH_SOURCES = {
    "onnxruntime.transformers": "appends its folder to sys.path and imports fusion_utils etc. as top-level modules "
                                "(static INT8 and FP16 reach it)",
}
WITH_SOURCES_FULL = {"onnx2tf": "reads its own __init__.py when it converts"}
HIDDEN_IMPORTS = ["onnxruntime", "onnxruntime.quantization", "onnxruntime.transformers.float16", "onnxslim", "nncf", "psutil",
                  "platformdirs", "PIL", "sklearn.datasets"]
EXCLUDES_LITE = ["tensorflow", "keras", "tf2onnx", "onnx2tf", "tf_keras", "tensorflowjs", "jax", "tensorboard",
                 "PySide6.QtWebEngineCore", "PySide6.QtWebEngineWidgets", "PySide6.QtWebEngineQuick"]
EXCLUDES = ["torch", "matplotlib", "IPython", "pytest", "tkinter"]
# submodules never collected: examples and GUI demos (importing them starts a Qt app), unused backends, tests
SKIP_SUBMODULES = ("pyqtgraph.examples", "pyqtgraph.opengl", "pyqtgraph.jupyter", "openvino.torch",
                   "openvino.tools.ovc.moc_frontend.pytorch", "tensorflow.python.debug", "tensorflow.compiler.tests")


def keep_submodule(name: str) -> bool:
    return not name.startswith(SKIP_SUBMODULES) and ".tests" not in name and ".test_" not in name


DATAS = [(ROOT / "resources" / "samples", "resources/samples"), (ROOT / "resources" / "icons", "resources/icons")]
# distributions whose metadata the app reads (the catalog pins environments to the app's versions; the agent and
# `devices` report runtime versions)
METADATA = ["numpy", "onnx", "onnxruntime", "openvino", "ai-edge-litert", "nncf", "netron", "PySide6"]
METADATA_FULL = ["tensorflow-cpu", "tensorflowjs", "keras"]


def source_files() -> list[tuple[Path, str]]:
    """EdgeStudio's own sources as plain files: an environment's Python (a system python3, not the bundle) imports
    the job runner from them (``execution.envs._package_path`` finds them beside the frozen package)."""
    pkg = ROOT / "edgestudio"
    return [(f, str(Path("edgestudio") / f.parent.relative_to(pkg))) for f in sorted(pkg.rglob("*.py"))
            if "__pycache__" not in f.parts]


def web_files() -> list[tuple[Path, str]]:
    """The page and the browser runtimes' files that pages load (from web/node_modules, installed by npm ci)."""
    from edgestudio.backends.browser import RUNTIME_DIRS, RUNTIME_FILES

    out = [(ROOT / "web" / "bench.html", "web")]
    for kind, files in RUNTIME_FILES.items():
        out += [(ROOT / "web" / "node_modules" / RUNTIME_DIRS[kind] / f, f"web/node_modules/{RUNTIME_DIRS[kind]}")
                for f in files]
    return out


def collect(variant: str) -> dict[str, list[str]]:
    packages = dict(COLLECT_ALL)
    if variant == "full":
        packages.update(COLLECT_ALL_FULL)
    return {"collect_all": list(packages), "hidden": list(HIDDEN_IMPORTS),
            "metadata": METADATA + (METADATA_FULL if variant == "full" else []),
            "with_sources": list(WITH_SOURCES) + (list(WITH_SOURCES_FULL) if variant == "full" else []),
            "excludes": EXCLUDES + (EXCLUDES_LITE if variant == "lite" else [])}
