"""Accuracy on real data: top-1/top-5 on a labeled dataset, or, without labels, agreement with the parent
model (top-1 agreement, cosine similarity, max abs diff). Runs on any runtime/device."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgestudio.core.datasets import Dataset, DatasetError, Preprocess, load_dataset
from edgestudio.core.progress import CancelToken, ProgressCallback, noop_progress


@dataclass
class EvalResult:
    top1: float
    top5: float | None
    n: int
    runtime: str
    device: str

    def to_dict(self) -> dict[str, Any]:
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def _session(model: str | Path, runtime: str | None, device: str, ov_precision: str | None = "f32") -> Any:
    from edgestudio.backends.runtimes import get_runtime, runtime_for_format
    from edgestudio.core.formats import detect_format

    rt = runtime or runtime_for_format(detect_format(model))
    # f32 on OpenVINO by default: the accuracy of the model, not of the CPU's default bf16 execution;
    # ov_precision=None measures what the device's default precision gives.
    from edgestudio.backends.runtimes.base import check_precision

    # ov_precision: the check precision where the runtime has one (OpenVINO f32), None: the device default
    return get_runtime(rt).load(model, device=device, precision=ov_precision if check_precision(rt) else None)


def predict(session: Any, dataset: Dataset, *, limit: int | None = None, pre: Preprocess | None = None,
            inputs: Any = None, progress: ProgressCallback = noop_progress,
            cancel: CancelToken | None = None) -> np.ndarray:
    """The first output for every sample, stacked (batch of one: works for static and dynamic batch).

    The dataset feeds the first input; other inputs come from ``inputs`` (an InputSpec: --value, --input)."""
    from edgestudio.core.inputspec import CHECK_DYNAMIC_DIM, InputSpec, make_feeds

    spec = session.inputs[0]
    n = len(dataset) if limit is None else min(limit, len(dataset))
    rest = session.inputs[1:]
    extra: dict[str, np.ndarray] = {}
    if rest:  # a full feed from the input specification; the dataset then replaces the first input
        extra = make_feeds(session.inputs, InputSpec.from_dict(inputs), count=1,
                           dynamic_default=CHECK_DYNAMIC_DIM).samples[0]
        extra.pop(spec.name, None)
    outs = []
    for i, x in enumerate(dataset.samples(spec, pre, limit=n)):
        if cancel is not None and i % 16 == 0:
            cancel.check()
        outs.append(np.asarray(next(iter(session.run({spec.name: x, **extra}).values()))).reshape(1, -1))
        if i % 32 == 0:
            progress(i / max(n, 1), f"sample {i}/{n}")
    progress(1.0, "done")
    return np.concatenate(outs) if outs else np.zeros((0, 0))


def topk(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float | None]:
    top1 = float((scores.argmax(1) == labels).mean())
    if scores.shape[1] < 5:
        return top1, None
    top5 = np.argsort(-scores, axis=1)[:, :5]
    return top1, float((top5 == labels[:, None]).any(1).mean())


def evaluate(model: str | Path, dataset: str | Path | Dataset, *, runtime: str | None = None, device: str = "CPU",
             limit: int | None = None, ov_precision: str | None = "f32", inputs: Any = None,
             progress: ProgressCallback = noop_progress, cancel: CancelToken | None = None) -> EvalResult:
    sess = _session(model, runtime, device, ov_precision)
    ds = dataset if isinstance(dataset, Dataset) else load_dataset(dataset, spec=sess.inputs[0], require_labels=True)
    labels = ds.labels()[: limit or len(ds)]
    scores = predict(sess, ds, limit=limit, inputs=inputs, progress=progress, cancel=cancel)
    if scores.shape[1] <= int(labels.max()):
        raise DatasetError(ds.path, f"labels go up to {int(labels.max())} but the model has {scores.shape[1]} outputs")
    top1, top5 = topk(scores, labels)
    return EvalResult(top1, top5, int(len(labels)), sess.runtime, sess.device)


def agreement(parent: str | Path, child: str | Path, dataset: str | Path | Dataset, *, parent_runtime: str | None = None,
              child_runtime: str | None = None, limit: int | None = 256, child_ov_precision: str | None = "f32",
              cancel: CancelToken | None = None) -> dict[str, float]:
    """Without labels: how closely ``child`` follows ``parent`` on the same samples."""
    ps, cs = _session(parent, parent_runtime, "CPU"), _session(child, child_runtime, "CPU", child_ov_precision)
    ds = dataset if isinstance(dataset, Dataset) else load_dataset(dataset, spec=ps.inputs[0])
    a = predict(ps, ds, limit=limit, cancel=cancel).astype(np.float64)
    b = predict(cs, ds, limit=limit, cancel=cancel).astype(np.float64)
    cos = float((a * b).sum() / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-30))
    return {"top1_agreement": float((a.argmax(1) == b.argmax(1)).mean()), "cosine": cos,
            "max_abs_diff": float(np.abs(a - b).max()), "n": int(len(a))}
