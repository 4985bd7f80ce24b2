"""Datasets for calibration and evaluation.

A labeled dataset is an ``.npz`` with ``x`` and ``y``, or a folder of class sub-folders of images (ImageNet
layout; classes in sorted order). An unlabeled calibration set is a folder of images, an ``.npy``/``.npz``
(``x``), or, only when asked for explicitly, random data (the result then carries a warning).
Preprocessing (resize, layout, scale/mean/std, dtype) is inferred from the model's input spec and can be
overridden. Image folders are read lazily, a batch at a time: never a whole folder in memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from edgestudio.core.errors import EdgeStudioError
from edgestudio.core.modelinfo import TensorSpec

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}
RANDOM = "random"


class DatasetError(EdgeStudioError):
    """A dataset that cannot be used: names the file and what is wrong with it."""


@dataclass(frozen=True)
class Preprocess:
    """How raw samples become model inputs. ``size`` is (height, width) for images."""

    layout: str = "NHWC"  # of the model input, for 4-D image inputs
    size: tuple[int, int] | None = None
    channels: int | None = None
    scale: float = 1.0 / 255.0  # applied to image pixels (0..255) before mean/std
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    dtype: str = "float32"

    @classmethod
    def infer(cls, spec: TensorSpec, **overrides: Any) -> Preprocess:
        shape = spec.shape
        pre = cls(dtype=spec.dtype if spec.dtype not in ("unknown", "str") else "float32")
        if len(shape) == 4:
            c_first, c_last = shape[1], shape[3]
            nchw = isinstance(c_first, int) and c_first in (1, 3, 4) and not (isinstance(c_last, int) and c_last in (1, 3, 4))
            h, w = (shape[2], shape[3]) if nchw else (shape[1], shape[2])
            size = (h, w) if isinstance(h, int) and isinstance(w, int) and h > 0 and w > 0 else None
            channels = c_first if nchw else c_last
            pre = replace(pre, layout="NCHW" if nchw else "NHWC", size=size,
                          channels=channels if isinstance(channels, int) and channels > 0 else None)
        if np.dtype(pre.dtype).kind in "iu":
            pre = replace(pre, scale=1.0)  # integer inputs take raw pixels
        return replace(pre, **{k: v for k, v in overrides.items() if v is not None})


@dataclass
class Dataset:
    """Samples (and maybe labels), read lazily. ``len()`` is the number of samples."""

    path: str
    x: np.ndarray | None = None  # in-memory samples (npz/npy)
    y: np.ndarray | None = None
    images: list[Path] = field(default_factory=list)  # lazily read image files
    image_labels: list[int] | None = None
    classes: list[str] | None = None
    random_spec: TensorSpec | None = None
    random_count: int = 0
    warnings: list[str] = field(default_factory=list)

    @property
    def labeled(self) -> bool:
        return self.y is not None or self.image_labels is not None

    def __len__(self) -> int:
        if self.x is not None:
            return int(self.x.shape[0])
        if self.images:
            return len(self.images)
        return self.random_count

    def labels(self) -> np.ndarray:
        if self.y is not None:
            return self.y
        if self.image_labels is not None:
            return np.asarray(self.image_labels)
        raise DatasetError(self.path, "no labels: a labeled dataset is an .npz with 'y' or a folder of class folders")

    def samples(self, spec: TensorSpec, pre: Preprocess | None = None, limit: int | None = None,
                batch: int = 1) -> Iterator[np.ndarray]:
        """Model-ready input arrays of ``batch`` samples each, in the model's layout and dtype."""
        pre = pre or Preprocess.infer(spec)
        n = len(self) if limit is None else min(limit, len(self))
        if self.random_spec is not None:
            from edgestudio.core.inputspec import InputSpec, make_feeds

            for i in range(0, n, batch):
                shape = InputSpec(shapes={"x": _batch_shape(spec, min(batch, n - i))})
                yield make_feeds([replace(spec, name="x")], shape, seed=i).samples[0]["x"]
            return
        for i in range(0, n, batch):
            if self.x is not None:
                raw = self.x[i: i + batch]
                yield _adapt_array(raw, spec, pre, self.path)
            else:
                yield np.concatenate([_load_image(p, spec, pre) for p in self.images[i: i + batch]])


def _batch_shape(spec: TensorSpec, batch: int) -> list[int]:
    return [batch] + [d if isinstance(d, int) and d > 0 else 1 for d in spec.shape[1:]]


def _adapt_array(raw: np.ndarray, spec: TensorSpec, pre: Preprocess, path: str) -> np.ndarray:
    """Fit stored samples to the model input: add a channel axis, transpose NHWC<->NCHW, cast."""
    from edgestudio.core.inputspec import layout_perm

    arr = raw
    if arr.ndim == len(spec.shape) + 1 and arr.shape[1] == 1:  # a stack of batch-1 inputs, as --input files hold
        arr = arr[:, 0]
    if arr.ndim == len(spec.shape) - 1:  # (N, H, W) for a (N, H, W, 1) model
        arr = arr[..., None] if pre.layout == "NHWC" else arr[:, None]
    try:
        perm = layout_perm(list(arr.shape), spec.shape)
    except ValueError:
        raise DatasetError(path, f"samples of shape {list(raw.shape[1:])} do not fit the model input "
                                 f"{spec.name} {spec.shape}") from None
    if perm:
        arr = arr.transpose(perm)
    return np.ascontiguousarray(arr.astype(np.dtype(pre.dtype), copy=False))


def _load_image(path: Path, spec: TensorSpec, pre: Preprocess) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            channels = pre.channels or 3
            im = im.convert("L" if channels == 1 else "RGB")
            if pre.size:
                im = im.resize((pre.size[1], pre.size[0]), Image.BILINEAR)
            arr = np.asarray(im, dtype=np.float32)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DatasetError(path, f"unreadable image ({' '.join(str(exc).split())[:160]})") from None
    if arr.ndim == 2:
        arr = arr[..., None]
    arr = arr * pre.scale
    if pre.mean is not None:
        arr = arr - np.asarray(pre.mean, np.float32)
    if pre.std is not None:
        arr = arr / np.asarray(pre.std, np.float32)
    if pre.layout == "NCHW":
        arr = arr.transpose(2, 0, 1)
    return arr[None].astype(np.dtype(pre.dtype))


def load_dataset(path: str | Path, *, spec: TensorSpec | None = None, require_labels: bool = False,
                 random_count: int = 64) -> Dataset:
    """Open a dataset (see module docstring). ``"random"`` gives random data for ``spec``, with a warning."""
    if str(path) == RANDOM:
        if spec is None:
            raise DatasetError(None, "random calibration data needs the model's input spec")
        if require_labels:
            raise DatasetError(RANDOM, "random data has no labels: give a labeled .npz or image folder")
        return Dataset(RANDOM, random_spec=spec, random_count=random_count,
                       warnings=["calibrated on random data: accuracy of the result is unknown; "
                                 "give real samples with --calibration"])
    p = Path(path)
    if not p.exists():
        raise DatasetError(p, "no such file or folder")
    ds = _open_folder(p) if p.is_dir() else _open_file(p)
    if len(ds) == 0:
        raise DatasetError(p, "the dataset is empty")
    if require_labels and not ds.labeled:
        raise DatasetError(p, "no labels: a labeled dataset is an .npz with 'y' or a folder of class folders")
    if ds.y is not None and len(ds.y) != len(ds):
        raise DatasetError(p, f"{len(ds)} samples but {len(ds.y)} labels")
    if spec is not None and ds.x is not None:
        _adapt_array(ds.x[:1], spec, Preprocess.infer(spec), str(p))  # fail now, not mid-job
    return ds


def _open_file(p: Path) -> Dataset:
    from edgestudio.core.errors import UsageError
    from edgestudio.core.safety import load_arrays

    try:
        data = load_arrays(p, "dataset")
    except UsageError as exc:
        raise DatasetError(p, exc.cause) from None
    if not isinstance(data, dict):
        return Dataset(str(p), x=data)  # type: ignore[arg-type]
    if "x" not in data:
        raise DatasetError(p, f"no 'x' array in the archive (it holds: {', '.join(data) or 'nothing'})")
    x = data["x"]
    y = data.get("y")
    if y is not None:
        y = np.asarray(y).reshape(len(y), -1)
        y = y[:, 0] if y.shape[1] == 1 else y.argmax(1)  # class ids or one-hot
    return Dataset(str(p), x=x, y=None if y is None else y.astype(np.int64))


def _open_folder(p: Path) -> Dataset:
    subdirs = sorted(d for d in p.iterdir() if d.is_dir() and not d.name.startswith("."))
    if subdirs:
        images, labels = [], []
        for idx, d in enumerate(subdirs):
            files = sorted(f for f in d.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
            images += files
            labels += [idx] * len(files)
        if not images:
            raise DatasetError(p, "the class folders hold no images")
        return Dataset(str(p), images=images, image_labels=labels, classes=[d.name for d in subdirs])
    images = sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise DatasetError(p, "the folder holds no images (expected .png/.jpg files, or class sub-folders)")
    return Dataset(str(p), images=images)
