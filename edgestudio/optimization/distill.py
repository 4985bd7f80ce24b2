"""Knowledge distillation (Keras): a smaller student learns to match the teacher's soft outputs on the user's
unlabeled inputs, the third way to shrink a model beside quantization and pruning.

The student is the teacher's own architecture at a width multiplier (every Conv's filters and Dense's units scaled,
the output layer kept), or a Keras model the user gives; it starts from fresh weights. Training is the classic
recipe (Hinton et al.): the KL divergence between the teacher's and the student's outputs softened by a temperature
T, scaled by T^2. Teachers that end in a softmax give their log-probabilities as logits (the same softened targets).
Each epoch's loss streams out as it is measured (``on_sample(epoch, loss)``), progress and cancel are the job's;
with a labeled dataset both models are evaluated on it afterwards (top-1), so the price of the smaller model is a
measured figure, never an assumption.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

import numpy as np

from edgestudio.core.errors import EdgeStudioError, UsageError
from edgestudio.core.formats import ModelFormat, detect_format
from edgestudio.core.progress import CancelToken, ProgressCallback, noop_progress

KERAS = (ModelFormat.KERAS, ModelFormat.KERAS_H5)


def _scaled_config(config: dict[str, Any], width: float, output_layers: set[str]) -> dict[str, Any]:
    cfg = copy.deepcopy(config)
    for layer in cfg["layers"]:
        c = layer["config"]
        layer.pop("build_config", None)
        if c.get("name") in output_layers:
            continue
        for key in ("filters", "units"):
            if isinstance(c.get(key), int):
                c[key] = max(1, int(round(c[key] * width)))
    return cfg


def make_student(teacher: Any, width: float) -> Any:
    """The teacher's architecture at ``width`` (0 < width < 1), fresh weights."""
    import keras

    if not 0 < width < 1:
        raise UsageError(None, f"student width {width}: give a multiplier between 0 and 1 (e.g. 0.5)")
    outputs = {t._keras_history[0].name for t in teacher.outputs}  # noqa: SLF001 - the output layers' names
    cfg = _scaled_config(teacher.get_config(), width, outputs)
    cls = keras.Sequential if isinstance(teacher, keras.Sequential) else keras.Model
    return cls.from_config(cfg)


def _logits_head(model: Any) -> bool:
    """Make the model's last layer emit logits (its softmax taken off); True when there was one to take off."""
    import keras

    last = model.layers[-1]
    if getattr(last, "activation", None) is keras.activations.softmax:
        last.activation = keras.activations.linear
        return True
    return False


def _load_inputs(data: str | Path, shape: tuple[int | None, ...]) -> np.ndarray:
    p = Path(data)
    if not p.is_file():
        raise UsageError(None, f"{p}: no such file (the unlabeled inputs: an .npz with an 'x' array, or an .npy)")
    from edgestudio.core.safety import load_arrays

    loaded = load_arrays(p, "inputs")
    if isinstance(loaded, dict):
        if not loaded:
            raise EdgeStudioError(p, "the archive holds no arrays")
        x = loaded["x"] if "x" in loaded else next(iter(loaded.values()))
    else:
        x = loaded
    x = np.asarray(x, dtype=np.float32)
    want = tuple(d for d in shape[1:])
    if x.shape[1:] != want and x.ndim == len(shape) + 1 and x.shape[1] == 1:
        x = x[:, 0]  # a stack of batch-1 samples
    if x.shape[1:] != want:
        raise EdgeStudioError(p, f"inputs of shape {list(x.shape[1:])} per sample; the teacher takes {list(want)}")
    return x


def count_params(model: Any) -> int:
    return int(sum(int(np.prod(w.shape)) for w in model.trainable_weights))


def distill(teacher: str | Path, output: str | Path, *, data: str | Path, student: str | None = None,
            width: float = 0.5, temperature: float = 4.0, epochs: int = 30, batch_size: int = 64,
            learning_rate: float = 3e-3, dataset: str | Path | None = None, seed: int = 0,
            progress: ProgressCallback = noop_progress, cancel: CancelToken | None = None,
            on_sample: Any = None) -> dict[str, Any]:
    """Train a student on ``data`` (unlabeled inputs) to match ``teacher``; write it to ``output`` (.keras)."""
    import keras
    import tensorflow as tf

    teacher, output = Path(teacher), Path(output)
    cancel = cancel or CancelToken()
    if detect_format(teacher) not in KERAS:
        raise EdgeStudioError(teacher, "distillation trains Keras models: give the Keras teacher (.keras or .h5)")
    if temperature <= 0 or epochs < 1 or batch_size < 1:
        raise UsageError(None, "temperature > 0, epochs >= 1 and batch size >= 1, please")
    keras.utils.set_random_seed(seed)
    progress(0.0, "loading the teacher")
    t_model = keras.saving.load_model(str(teacher), compile=False)
    x = _load_inputs(data, tuple(t_model.inputs[0].shape))
    progress(0.02, f"the teacher's outputs on {len(x)} inputs")
    t_out = t_model.predict(x, batch_size=256, verbose=0)
    probs_like = bool(np.all(t_out >= 0) and np.allclose(t_out.sum(axis=-1), 1.0, atol=1e-3))
    t_logits = np.log(np.clip(t_out, 1e-8, 1.0)) if probs_like else t_out
    if student:
        s_path = Path(student)
        if detect_format(s_path) not in KERAS:
            raise EdgeStudioError(s_path, "the student must be a Keras model (.keras or .h5)")
        s_model = keras.saving.load_model(str(s_path), compile=False)
        what = f"the given student {s_path.name}"
    else:
        s_model = make_student(t_model, width)
        what = f"the teacher at width {width:g}"
    if tuple(s_model.outputs[0].shape[1:]) != tuple(t_model.outputs[0].shape[1:]):
        raise EdgeStudioError(student or teacher, f"the student's output {list(s_model.outputs[0].shape[1:])} "
                                                  f"differs from the teacher's {list(t_model.outputs[0].shape[1:])}")
    softmax_out = _logits_head(s_model)
    opt = keras.optimizers.Adam(learning_rate)
    targets = tf.nn.softmax(t_logits / temperature)
    xs = tf.constant(x)

    @tf.function
    def step(xb: Any, tb: Any) -> Any:
        with tf.GradientTape() as tape:
            s_logits = s_model(xb, training=True)
            log_s = tf.nn.log_softmax(s_logits / temperature)
            loss = tf.reduce_mean(tf.reduce_sum(tb * (tf.math.log(tb + 1e-12) - log_s), axis=-1)) * temperature ** 2
        grads = tape.gradient(loss, s_model.trainable_weights)
        opt.apply_gradients(zip(grads, s_model.trainable_weights))
        return loss

    rng = np.random.default_rng(seed)
    losses: list[float] = []
    t0 = time.monotonic()
    for epoch in range(epochs):
        order = rng.permutation(len(x))
        total, n = 0.0, 0
        for i in range(0, len(x), batch_size):
            cancel.check()
            idx = order[i:i + batch_size]
            total += float(step(tf.gather(xs, idx), tf.gather(targets, idx))) * len(idx)
            n += len(idx)
        losses.append(total / n)
        if on_sample is not None:
            on_sample(epoch + 1, losses[-1])
        progress(0.05 + 0.85 * (epoch + 1) / epochs, f"epoch {epoch + 1}/{epochs}: distillation loss {losses[-1]:.4f}")
    if softmax_out:
        s_model.layers[-1].activation = keras.activations.softmax  # the student answers like its teacher
    output.parent.mkdir(parents=True, exist_ok=True)
    if output.suffix not in (".keras", ".h5"):
        output = output.with_suffix(".keras")
    s_model.save(str(output))
    result: dict[str, Any] = {
        "teacher": str(teacher), "output": str(output), "student": what, "width": None if student else width,
        "teacher_params": count_params(t_model), "student_params": count_params(s_model),
        "temperature": temperature, "epochs": epochs, "batch_size": batch_size, "inputs": len(x),
        "loss": [round(v, 6) for v in losses], "seconds": round(time.monotonic() - t0, 1)}
    result["param_ratio"] = round(result["student_params"] / result["teacher_params"], 4)
    if dataset:
        from edgestudio.bench.accuracy import evaluate

        progress(0.93, "evaluating teacher and student on the labeled set")
        result["teacher_top1"] = evaluate(teacher, dataset).top1
        result["student_top1"] = evaluate(output, dataset).top1
        result["top1_drop"] = round(result["teacher_top1"] - result["student_top1"], 6)
    result["artifacts"] = [{"path": str(output), "options": {
        "method": "distill", "student": what, "width": result["width"], "temperature": temperature, "epochs": epochs,
        "param_ratio": result["param_ratio"], "top1": result.get("student_top1"),
        "teacher_top1": result.get("teacher_top1")}}]
    progress(1.0, "done")
    return result
