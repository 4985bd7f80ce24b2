"""Build the sample models and data in ``resources/samples/`` (``python -m edgestudio.samples``).

A small CNN trained for real on scikit-learn's bundled digits dataset (8x8 grey images, no download),
saved as Keras v3, SavedModel, ONNX and TFLite, plus the held-out split and a calibration subset.
"""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

SAMPLES_DIR = Path(__file__).resolve().parent.parent / "resources" / "samples"
NAME = "digits_cnn"


def samples_dir() -> Path:
    """Where the samples live: beside the source tree, or bundled (PyInstaller sets sys._MEIPASS)."""
    import sys

    bundled = Path(getattr(sys, "_MEIPASS", "")) / "resources" / "samples"
    return bundled if getattr(sys, "_MEIPASS", None) and bundled.is_dir() else SAMPLES_DIR


def sample_models(folder: Path | None = None) -> list[Path]:
    folder = folder or samples_dir()
    names = [f"{NAME}.keras", f"{NAME}_savedmodel", f"{NAME}.onnx", f"{NAME}.tflite"]
    return [folder / n for n in names if (folder / n).exists()]


def load_digits_split(seed: int = 0):  # type: ignore[no-untyped-def]
    import numpy as np
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[..., None]  # NHWC, values in [0, 1]
    y = digits.target.astype(np.int64)
    return train_test_split(x, y, test_size=0.25, random_state=seed, stratify=y)


def build(out: Path, epochs: int = 40, seed: int = 0) -> dict[str, float]:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import numpy as np
    import tensorflow as tf
    import tf2onnx
    from tensorflow import keras

    keras.utils.set_random_seed(seed)
    x_train, x_test, y_train, y_test = load_digits_split(seed)

    inp = keras.Input(shape=(8, 8, 1), name="image")
    h = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv1")(inp)
    h = keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="conv2")(h)
    h = keras.layers.MaxPooling2D(2, name="pool")(h)
    h = keras.layers.Flatten(name="flatten")(h)
    h = keras.layers.Dense(64, activation="relu", name="fc1")(h)
    outp = keras.layers.Dense(10, activation="softmax", name="probs")(h)
    model = keras.Model(inp, outp, name=NAME)
    model.compile(optimizer=keras.optimizers.Adam(2e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x_train, y_train, epochs=epochs, batch_size=64, verbose=0, validation_split=0.1)
    _, acc = model.evaluate(x_test, y_test, verbose=0)

    out.mkdir(parents=True, exist_ok=True)
    model.save(out / f"{NAME}.keras")
    sm = out / f"{NAME}_savedmodel"
    shutil.rmtree(sm, ignore_errors=True)
    model.export(str(sm), verbose=False)
    spec = (tf.TensorSpec((None, 8, 8, 1), tf.float32, name="image"),)
    tf2onnx.convert.from_keras(model, input_signature=spec, opset=17, output_path=str(out / f"{NAME}.onnx"))
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    (out / f"{NAME}.tflite").write_bytes(conv.convert())
    np.savez_compressed(out / "digits_test.npz", x=x_test, y=y_test)
    rng = np.random.default_rng(seed)
    calib = x_train[rng.choice(len(x_train), 200, replace=False)]
    np.savez_compressed(out / "digits_calib.npz", x=calib)
    return {"test_accuracy": float(acc), "n_test": int(len(y_test))}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m edgestudio.samples", description=__doc__)
    ap.add_argument("--out", type=Path, default=SAMPLES_DIR, help="output folder (default: resources/samples)")
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--torch", action="store_true", help="only the PyTorch sample (digits_cnn.pt2), made in the "
                                                        "'torch' environment (edgestudio envs create torch)")
    args = ap.parse_args(argv)
    if args.torch:
        return build_torch(args.out)
    report = build(args.out, args.epochs)
    print(f"wrote samples to {args.out}: test accuracy {report['test_accuracy']:.4f} on {report['n_test']} images")
    return 0


def build_torch(out: Path) -> int:
    """``digits_cnn.pt2``: the same CNN in PyTorch, trained on the same split in the torch environment's Python."""
    import subprocess
    import sys
    import tempfile

    import numpy as np

    from edgestudio.core.catalog import envs_root

    python = envs_root() / "torch" / "bin" / "python"
    if not python.is_file():
        print("the PyTorch sample needs the 'torch' environment: edgestudio envs create torch", file=sys.stderr)
        return 1
    x_train, _, y_train, _ = load_digits_split(0)
    with tempfile.TemporaryDirectory(prefix="edgestudio-samples-") as tmp:
        train = Path(tmp) / "train.npz"
        np.savez(train, x=x_train.transpose(0, 3, 1, 2), y=y_train)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
        env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent)
        return subprocess.run([str(python), "-m", "edgestudio.samples_torch", str(train), str(out), NAME],
                              env=env).returncode


if __name__ == "__main__":
    raise SystemExit(main())
