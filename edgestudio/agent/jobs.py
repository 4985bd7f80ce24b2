"""The calls a device agent accepts besides bench, eval and inspect (``ALLOWED_CALLS`` in the server)."""

from __future__ import annotations

import base64
import io
import os
from typing import Any

DEFAULT_FEEDS_LIMIT = 1 << 30


def encode_arrays(arrays: dict[str, Any]) -> str:
    import numpy as np

    buf = io.BytesIO()
    np.savez(buf, **{k: np.asarray(v) for k, v in arrays.items()})
    return base64.b64encode(buf.getvalue()).decode()


def decode_arrays(text: str, limit: int | None = None) -> dict[str, Any]:
    """An encoded npz back into arrays; what it unpacks to is bounded (``limit``; on an agent's worker, the
    agent's unpacked-size limit), declared and real, like an upload. No pickles."""
    import numpy as np

    from edgestudio.agent.unzip import read_members

    if limit is None:
        limit = int(os.environ.get("EDGESTUDIO_AGENT_MAX_UNPACKED") or DEFAULT_FEEDS_LIMIT)
    try:
        packed = base64.b64decode(text, validate=True)
    except ValueError:
        raise ValueError("the feeds are not base64") from None
    members = read_members(io.BytesIO(packed), limit, "the feeds")
    return {name.removesuffix(".npy"): np.load(io.BytesIO(data), allow_pickle=False) for name, data in members.items()}


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
