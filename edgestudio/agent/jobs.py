"""The calls a device agent accepts besides bench, eval and inspect (``ALLOWED_CALLS`` in the server)."""

from __future__ import annotations

import base64
import io
from typing import Any


def encode_arrays(arrays: dict[str, Any]) -> str:
    import numpy as np

    buf = io.BytesIO()
    np.savez(buf, **{k: np.asarray(v) for k, v in arrays.items()})
    return base64.b64encode(buf.getvalue()).decode()


def decode_arrays(text: str) -> dict[str, Any]:
    import numpy as np

    with np.load(io.BytesIO(base64.b64decode(text)), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def parity_outputs(model: str, runtime: str, feeds: str, device: str = "CPU") -> dict[str, Any]:
    """Run ``model`` once on the device on ``feeds`` (an encoded npz of inputs): the outputs, encoded, for the
    studio to compare with its own reference run."""
    from edgestudio.backends.runtimes import get_runtime
    from edgestudio.backends.runtimes.base import check_precision

    session = get_runtime(runtime).load(model, device=device, precision=check_precision(runtime))
    out = session.run(decode_arrays(feeds))
    return {"outputs": encode_arrays(out), "runtime": runtime, "device": device}


def device_list() -> dict[str, Any]:
    from edgestudio.agent.facts import runtime_devices

    return {"devices": runtime_devices()}
