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
}
COLLECT_ALL_FULL = {
    "tensorflow": "Keras/SavedModel conversion and TFLite quantization",
    "tf2onnx": "TensorFlow -> ONNX",
    "keras": "Keras models",
}
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


def collect(variant: str) -> dict[str, list[str]]:
    packages = dict(COLLECT_ALL)
    if variant == "full":
        packages.update(COLLECT_ALL_FULL)
    return {"collect_all": list(packages), "hidden": list(HIDDEN_IMPORTS),
            "excludes": EXCLUDES + (EXCLUDES_LITE if variant == "lite" else [])}
