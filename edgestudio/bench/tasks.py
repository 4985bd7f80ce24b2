"""Task metrics: what an output means to its user, judged the way that user would judge it.

A cosine over a whole tensor answers "are these numbers close"; a user asks "does it still detect, segment, embed".
Given what an output is (``--output-kind NAME=KIND``, remembered in the workspace), the checks also judge it by its
task, worst sample first:

- ``logits`` / ``scores``: top-1 agreement of the class axis (the last), and top-5 overlap;
- ``embedding``: cosine of each sample's embedding, mean-pooled over the tokens with the attention mask where the
  output is per token (``[N, T, D]``);
- ``mask``: IoU of the masks (argmax of the class axis, or a threshold: 0.5 for probabilities, 0 for logits);
- ``boxes``: for ``[N, A, 4]`` the IoU of each anchor's box; for a detector's packed ``[N, 4+C, A]`` / ``[N, A, 4+C]``
  the IoU of the boxes at the reference's confident anchors (scored at least half the best), their class agreement,
  and how far the confident anchors of both agree (intersection over union of the two sets);
- ``landmarks``: the mean landmark error relative to the reference's range (a normalised mean error);
- ``raw``: no task metric.

Without a declared kind, a packed output whose channels hold scores in [0, 1] next to others (a YOLO-style
``[N, 4+C, A]``) still gets the anchor and class agreement; agreement near chance is a collapse. All functions are
pure numpy; they never fail on an odd shape (they return None: no such metric for it).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

#: limits per metric. The same in exact mode, where the element-wise tolerance already judges the numbers: there a
#: task metric only catches what a tolerance cannot see (a flipped class), never float rounding at a threshold
LIMITS = {"top-1 agreement": 0.9, "embedding cosine": 0.99, "mask IoU": 0.9, "box IoU": 0.85,
          "class agreement": 0.9, "anchor overlap": 0.5, "landmark error": 0.02}
LOWER_IS_BETTER = {"landmark error"}
TOP_ANCHORS = 100
#: a detector's anchor is confident when scored at least this fraction of the sample's best score
CONFIDENT = 0.5


@dataclass
class TaskMetric:
    kind: str  # the output kind it judges (or "auto")
    metric: str  # a key of LIMITS
    value: float  # the worst sample's
    limit: float
    ok: bool
    detail: str = ""

    def text(self) -> str:
        v = f"{self.value:.1%}" if self.metric in ("top-1 agreement", "class agreement", "anchor overlap") \
            else f"{self.value:.3g}" if self.metric == "landmark error" else f"{self.value:.4f}"
        return f"{self.metric} {v}" + ("" if self.ok else f" ({'>' if self.metric in LOWER_IS_BETTER else '<'} "
                                                           f"{self.limit:g})")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["value"] = float(f"{self.value:.6g}")
        return d


def _metric(kind: str, metric: str, value: float, detail: str = "") -> TaskMetric:
    limit = LIMITS[metric]
    ok = value <= limit if metric in LOWER_IS_BETTER else value >= limit
    return TaskMetric(kind, metric, float(value), limit, bool(ok), detail)


def _cos_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    na, nb = np.linalg.norm(a, axis=-1), np.linalg.norm(b, axis=-1)
    dot = np.sum(a * b, axis=-1)
    out = dot / np.maximum(na * nb, 1e-300)
    return np.where((na == 0) & (nb == 0), 1.0, out)


# ------------------------------------------------------------------------------------------- per kind
def classes(ref: list[np.ndarray], got: list[np.ndarray], kind: str = "logits") -> list[TaskMetric]:
    """Top-1 agreement along the last axis (every other position is a row: [N, C], [N, T, C])."""
    if ref[0].ndim < 1 or ref[0].shape[-1] < 2:
        return []
    per_sample = []
    top5 = []
    for r, g in zip(ref, got):
        rr, gg = r.reshape(-1, r.shape[-1]), g.reshape(-1, g.shape[-1])
        per_sample.append(float(np.mean(rr.argmax(1) == gg.argmax(1))))
        k = min(5, rr.shape[1])
        if k > 1:
            tr, tg = np.argsort(-rr, 1)[:, :k], np.argsort(-gg, 1)[:, :k]
            top5.append(float(np.mean([len(set(a) & set(b)) / k for a, b in zip(tr, tg)])))
    detail = f"top-{min(5, ref[0].shape[-1])} overlap {min(top5):.1%}" if top5 else ""
    return [_metric(kind, "top-1 agreement", min(per_sample), detail)]


def _pool_mask(feed: dict[str, np.ndarray] | None, n: int, t: int) -> np.ndarray | None:
    """The attention mask of a per-token output [n, t, D]: an input named like one, shaped [n, t]."""
    if not feed:
        return None
    for name, arr in feed.items():
        a = np.asarray(arr)
        if "mask" in name.lower() and a.shape == (n, t):
            return a.astype(np.float64)
    return None


def embedding(ref: list[np.ndarray], got: list[np.ndarray],
              feeds: list[dict[str, np.ndarray]] | None = None) -> list[TaskMetric]:
    """Cosine per embedding: rows of [N, D]; [N, T, D] mean-pooled over the tokens the attention mask keeps."""
    if ref[0].ndim < 2:
        return []
    worst, pooled = 1.0, False
    for i, (r, g) in enumerate(zip(ref, got)):
        r, g = r.astype(np.float64), g.astype(np.float64)
        if r.ndim >= 3:
            n, t = r.shape[0], r.shape[1]
            m = _pool_mask(feeds[i] if feeds and i < len(feeds) else None, n, t)
            if m is None:
                m = np.ones((n, t))
            else:
                pooled = True
            w = m.reshape(n, t, *([1] * (r.ndim - 2)))
            denom = np.maximum(w.sum(1), 1e-9)
            r, g = (r * w).sum(1) / denom, (g * w).sum(1) / denom
        rows = _cos_rows(r.reshape(r.shape[0], -1), g.reshape(g.shape[0], -1))
        worst = min(worst, float(rows.min()))
    return [_metric("embedding", "embedding cosine", worst,
                    "mean-pooled with the attention mask" if pooled else "")]


def _class_axis(shape: tuple[int, ...]) -> int | None:
    """The class axis of a segmentation map: 1 in [N, C, H, W], -1 in [N, H, W, C] (the smaller one), or None."""
    if len(shape) != 4:
        return None
    c1, cl = shape[1], shape[-1]
    if c1 <= cl and c1 <= 256 and c1 < min(shape[2], shape[3]):
        return 1
    if cl < c1 and cl <= 256 and cl < min(shape[1], shape[2]):
        return 3
    return None


def _iou(a: np.ndarray, b: np.ndarray) -> float | None:
    union = np.logical_or(a, b).sum()
    return None if union == 0 else float(np.logical_and(a, b).sum() / union)


def mask(ref: list[np.ndarray], got: list[np.ndarray]) -> list[TaskMetric]:
    axis = _class_axis(ref[0].shape)
    if axis is not None and ref[0].shape[axis] == 1:
        axis = None
    ious: list[float] = []
    for r, g in zip(ref, got):
        if axis is not None:
            lr, lg = r.argmax(axis), g.argmax(axis)
            per = [x for c in np.unique(np.concatenate([lr.ravel(), lg.ravel()]))
                   if (x := _iou(lr == c, lg == c)) is not None]
            if per:
                ious.append(float(np.mean(per)))
            continue
        lo, hi = float(r.min()), float(r.max())
        thr = 0.5 if lo >= 0.0 and hi <= 1.0 else 0.0
        x = _iou(r > thr, g > thr)
        if x is not None:
            ious.append(x)
    if not ious:
        return []
    return [_metric("mask", "mask IoU", min(ious), f"{'per-class mean over ' if axis is not None else ''}"
                                                         f"{len(ious)} samples")]


def _box_iou(a: np.ndarray, b: np.ndarray, xyxy: bool) -> np.ndarray:
    """Element-wise IoU of boxes [M, 4] (corners, or centre and size)."""
    if not xyxy:
        a = np.concatenate([a[:, :2] - a[:, 2:4] / 2, a[:, :2] + a[:, 2:4] / 2], 1)
        b = np.concatenate([b[:, :2] - b[:, 2:4] / 2, b[:, :2] + b[:, 2:4] / 2], 1)
    lt, rb = np.maximum(a[:, :2], b[:, :2]), np.minimum(a[:, 2:4], b[:, 2:4])
    inter = np.prod(np.clip(rb - lt, 0, None), 1)
    area = lambda x: np.prod(np.clip(x[:, 2:4] - x[:, :2], 0, None), 1)  # noqa: E731
    union = area(a) + area(b) - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-300), 1.0)


def _anchors_last(x: np.ndarray) -> np.ndarray | None:
    """A detector output as [N, A, K] (anchors, channels); ``[N, K, A]`` is transposed (K the smaller axis)."""
    if x.ndim != 3:
        return None
    return np.swapaxes(x, 1, 2) if x.shape[1] < x.shape[2] else x


def score_channels(ref: list[np.ndarray]) -> int | None:
    """Where a packed detector output's class scores start: the channels after the first 4 whose reference values
    all lie in [0, 1] while the first 4 do not (a YOLO-style ``[N, 4+C, A]``), or None."""
    x = _anchors_last(ref[0])
    if x is None or x.shape[2] < 6 or x.shape[1] < 16:
        return None
    allr = np.concatenate([_anchors_last(r).reshape(-1, x.shape[2]) for r in ref])  # type: ignore[union-attr]
    lo, hi = allr.min(0), allr.max(0)
    scores = (lo >= 0.0) & (hi <= 1.0)
    if scores[4:].all() and not scores[:4].all() and float(np.ptp(allr[:, 4:])) > 0:
        return 4
    return None


def boxes(ref: list[np.ndarray], got: list[np.ndarray], kind: str = "boxes",
          start: int | None = None) -> list[TaskMetric]:
    x = _anchors_last(ref[0])
    if x is None or x.shape[2] < 4:
        return []
    k = x.shape[2]
    start = start if start is not None else (4 if k > 4 else None)
    xyxy = all(bool(np.all((a := _anchors_last(r).reshape(-1, k))[:, 2] >= a[:, 0]) and  # type: ignore[union-attr]
                    np.all(a[:, 3] >= a[:, 1])) for r in ref)
    ious, agree, overlap = [], [], []
    for r, g in zip(ref, got):
        rr, gg = _anchors_last(r), _anchors_last(g)
        for b in range(rr.shape[0]):  # type: ignore[union-attr]
            ra, ga = rr[b].astype(np.float64), gg[b].astype(np.float64)  # type: ignore[index]
            if start is not None and k - start >= 1:
                rs, gs = ra[:, start:].max(1), ga[:, start:].max(1)
                if float(rs.max()) <= 0:
                    continue  # nothing detected in the reference: this image cannot tell
                conf_r = _confident(rs)
                conf_g = _confident(gs) if float(gs.max()) > 0 else set()
                overlap.append(len(conf_r & conf_g) / max(len(conf_r | conf_g), 1))
                sel = np.array(sorted(conf_r))
                if k - start > 1:
                    agree.append(float(np.mean(ra[sel, start:].argmax(1) == ga[sel, start:].argmax(1))))
            else:
                sel = np.arange(ra.shape[0])
            ious.append(float(np.mean(_box_iou(ra[sel, :4], ga[sel, :4], xyxy))))
    if not ious:
        return []
    where = f" of the anchors scored >= {CONFIDENT:g} x the best (at most {TOP_ANCHORS})" if overlap else ""
    out = [_metric(kind, "box IoU", min(ious), f"{'corners' if xyxy else 'centre-size'} boxes{where}")]
    if agree:
        out.append(_metric(kind, "class agreement", min(agree), "at the reference's confident anchors"))
    if overlap:
        out.append(_metric(kind, "anchor overlap", min(overlap),
                           f"confident anchors (scored >= {CONFIDENT:g} x the best) in common, over both sets"))
    return out


def _confident(scores: np.ndarray) -> set[int]:
    """The anchors scored at least CONFIDENT x the best (at most TOP_ANCHORS of them): where something is found."""
    idx = np.flatnonzero(scores >= CONFIDENT * float(scores.max()))
    if idx.size > TOP_ANCHORS:
        idx = idx[np.argsort(-scores[idx], kind="stable")[:TOP_ANCHORS]]
    return set(idx.tolist())


def landmarks(ref: list[np.ndarray], got: list[np.ndarray]) -> list[TaskMetric]:
    errs = []
    for r, g in zip(ref, got):
        r, g = r.astype(np.float64).reshape(r.shape[0], -1), g.astype(np.float64).reshape(g.shape[0], -1)
        rng = np.ptp(r, 1)
        for i in range(r.shape[0]):
            if rng[i] > 0:
                errs.append(float(np.mean(np.abs(r[i] - g[i])) / rng[i]))
    if not errs:
        return []
    return [_metric("landmarks", "landmark error", max(errs), "mean |error| / the reference's range")]


def task_metrics(kind: str | None, ref: list[np.ndarray], got: list[np.ndarray],
                 feeds: list[dict[str, np.ndarray]] | None = None) -> list[TaskMetric]:
    """The metrics of a declared kind (None: what the shape alone tells: a packed detector's scores)."""
    if not ref or any(r.shape != ref[0].shape for r in ref) or any(g.shape != r.shape for g, r in zip(got, ref)):
        return []
    try:
        if kind in ("logits", "scores"):
            return classes(ref, got, kind)
        if kind == "embedding":
            return embedding(ref, got, feeds)
        if kind == "mask":
            return mask(ref, got)
        if kind == "boxes":
            return boxes(ref, got)
        if kind == "landmarks":
            return landmarks(ref, got)
        if kind is None:
            start = score_channels(ref)
            if start is not None:  # judged against chance only: nobody said what the output is
                return [TaskMetric("auto", m.metric, m.value, lim, m.value > lim, m.detail)
                        for m in boxes(ref, got, "auto", start) if m.metric != "box IoU"
                        for lim in [chance(m.metric, ref)]]
    except (ValueError, IndexError):
        return []
    return []


def chance(metric: str, ref: list[np.ndarray]) -> float:
    """What a guess scores on ``metric`` (at most this: the scores no longer tell anything)."""
    if metric == "class agreement":
        x = _anchors_last(ref[0])
        n = (x.shape[2] - 4) if x is not None else 2
        return max(1.5 / max(n, 1), 0.1)
    return 0.1


#: an undeclared output thresholded at 0.5 needs this many cells on each side before its flips can tell
MIN_ACTIVE = 10


def _softmax_rows(allr: np.ndarray, shape: tuple[int, ...]) -> bool:
    """Rows of the last axis that sum to 1: class probabilities, judged by top-1 agreement instead."""
    return len(shape) >= 2 and shape[-1] >= 2 and bool(np.allclose(allr.reshape(-1, shape[-1]).sum(1), 1.0,
                                                                     atol=1e-3))


def undeclared_doubt(ref: list[np.ndarray], got: list[np.ndarray]) -> str | None:
    """Why a cosine that passes cannot vouch for an output nobody said the kind of (None: nothing seen).

    A cosine is blind to two things a task sees: values in [0, 1] that cross 0.5 (a probability map or a
    posteriorgram thresholded by its user: basic-pitch's notes after FP16 kept a cosine of 0.994 while 30 % of its
    active notes changed), and values far from zero that move a lot for their range (landmarks in pixels: MediaPipe's
    iris after INT8 kept 0.998 while its points moved by 5 % of their range). Without the output's kind neither is
    a failure, so the verdict is inconclusive, and says what to declare (``--output-kind``)."""
    if not ref or any(r.shape != ref[0].shape for r in ref) or any(g.shape != r.shape for g, r in zip(got, ref)):
        return None
    allr = np.concatenate([r.astype(np.float64).ravel() for r in ref])
    allg = np.concatenate([g.astype(np.float64).ravel() for g in got])
    if allr.size and float(allr.min()) >= 0.0 and float(allr.max()) <= 1.0 \
            and not _softmax_rows(allr, tuple(ref[0].shape)):
        a, b = allr > 0.5, allg > 0.5
        n_on = int(a.sum())
        if n_on >= MIN_ACTIVE and a.size - n_on >= MIN_ACTIVE:
            iou = _iou(a, b) or 1.0
            if iou < LIMITS["mask IoU"]:
                changed = int(np.logical_xor(a, b).sum())
                return (f"its values are in [0, 1] and {changed} cells crossed 0.5 ({n_on} were over it: IoU "
                        f"{iou:.3f} < {LIMITS['mask IoU']:g}): if it is thresholded (probabilities, a mask, notes), "
                        "the answer changed, which a cosine does not see")
    errs = [float(np.mean(np.abs(r.astype(np.float64) - g.astype(np.float64)))) / rng
            for r, g in zip(ref, got) if (rng := float(np.ptp(r))) > 0]
    limit = LIMITS["landmark error"]
    if errs and max(errs) > limit:
        return (f"its values moved by {max(errs):.1%} of their range on average (worst sample; > {limit:.0%}): "
                "values far from zero (coordinates, say) keep a high cosine when they move")
    return None
