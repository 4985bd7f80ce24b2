"""What a token holder may ask of the agent, field by field: every field of a run request is checked (its type,
its range, finite numbers, bounded sizes) before anything runs, and refused with one line naming the field.

Paths: the model and every data file of a job are ``cas:SHA256/NAME`` references to uploads; anything else is
refused with the same words whether or not such a path exists on the device (the agent reads nothing but its
uploads, and its answers say nothing about the rest of the disk). Devices: a job runs on this agent's own
devices; one that names an agent (``DEVICE@agent:NAME``, this agent or another) is refused at once, so an agent
never forwards a job, to itself least of all.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from edgestudio.agent.facts import browser_runtimes

PROTOCOL_V = 1
ALLOWED_KINDS = ("bench", "eval", "inspect")
PARITY = "edgestudio.agent.jobs:parity_outputs"
DEVICE_LIST = "edgestudio.agent.jobs:device_list"
ALLOWED_CALLS = (PARITY, DEVICE_LIST)

JOB_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}")
NAME_RE = re.compile(r"[a-z][a-z0-9_.-]{0,31}")  # a runtime, a precision
DEVICE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")  # CPU, GPU.0, CUDA:0
SHA_RE = re.compile(r"[0-9a-f]{64}")

MAX_ITERATIONS = 10_000_000
MAX_WARMUP = 100_000
MAX_THREADS = 1024
MAX_SECONDS = 7 * 86400.0
MAX_LIMIT = 10_000_000
MAX_MEMORY_MB = float(1 << 24)
MAX_NAMES = 64  # inputs named in shapes/values
MAX_NAME_CHARS = 256
MAX_RANK = 16
MAX_DIM = 1 << 20
MAX_ELEMENTS = 1 << 26  # one input's elements (256 MB as float32)
MAX_VALUE = 1e30
MAX_REF_CHARS = 1024
MAX_FEEDS_CHARS = 64 << 20

RUN_KEYS = ("type", "v", "job_id", "spec", "staging")
SPEC_KEYS = ("kind", "model", "options", "runtime", "device", "output", "timeout_s", "memory_limit_mb", "exclusive",
             "quick")

NOT_A_REF = "must be an upload reference (cas:SHA256/NAME): this agent reads only what was uploaded to it"
NAMES_AN_AGENT = ("names an agent (DEVICE@agent:NAME): a job sent to an agent runs on that agent's own devices "
                  "and is never forwarded, to itself or any other")

Resolve = Callable[[str, str], str]  # (field, cas: reference) -> the upload's path here; raises RequestError


class RequestError(ValueError):
    """A request refused: one line naming the field and the cause (never an exception's text)."""


@dataclass
class Job:
    job_id: str
    spec: dict[str, Any]  # every field checked, references resolved to paths in the agent's uploads


def check_run(msg: dict[str, Any], resolve: Resolve, runtimes: Callable[[], list[str]], feeds_limit: int) -> Job:
    """A run request, checked whole; ``runtimes``: the runtime names a job may ask for here; ``feeds_limit``: the
    most a parity call's feeds may unpack to."""
    if type(msg.get("v")) is not int or msg.get("v") != PROTOCOL_V:
        raise RequestError(f"protocol version {show(msg.get('v'))} is not {PROTOCOL_V}: the two sides run "
                           "different EdgeStudio versions")
    check_keys(msg, RUN_KEYS, "a run request")
    job_id = msg.get("job_id")
    if not isinstance(job_id, str) or not JOB_ID_RE.fullmatch(job_id):
        raise RequestError("'job_id' must be 1 to 128 letters, digits, '-', '_', '.' or ':'")
    if msg.get("staging") is not None:
        raise RequestError("'staging' is not taken by an agent (nothing is written for the studio here)")
    raw = msg.get("spec")
    if not isinstance(raw, dict):
        raise RequestError("'spec' must be an object")
    return Job(job_id, check_spec(raw, resolve, runtimes, feeds_limit))


def check_spec(raw: dict[str, Any], resolve: Resolve, runtimes: Callable[[], list[str]],
               feeds_limit: int) -> dict[str, Any]:
    check_keys(raw, SPEC_KEYS, "a job")
    kind = raw.get("kind")
    if kind not in (*ALLOWED_KINDS, "call"):
        named = kind if isinstance(kind, str) and NAME_RE.fullmatch(kind) else show(kind)
        raise RequestError(f"this agent runs bench, eval, inspect and parity jobs, not {named}")
    options = raw.get("options") if raw.get("options") is not None else {}
    if not isinstance(options, dict):
        raise RequestError("'options' must be an object")
    spec: dict[str, Any] = {"kind": kind, "output": None}
    if kind == "call":
        spec["options"] = _call_options(options, resolve, runtimes, feeds_limit)
        spec["model"] = None if raw.get("model") is None else _ref(raw["model"], "model", resolve)
    else:
        spec["model"] = _ref(raw.get("model"), "model", resolve)
        spec["options"] = OPTIONS[kind](options, resolve)
    spec["runtime"] = None if raw.get("runtime") is None else _runtime(raw["runtime"], "runtime", runtimes)
    spec["device"] = None if raw.get("device") is None else _device(raw["device"], "device")
    if raw.get("output") is not None:
        raise RequestError("'output' is not taken by an agent (results come back as messages)")
    spec["timeout_s"] = _opt_number(raw.get("timeout_s"), "timeout_s", MAX_SECONDS)
    spec["memory_limit_mb"] = _opt_number(raw.get("memory_limit_mb"), "memory_limit_mb", MAX_MEMORY_MB)
    for key in ("exclusive", "quick"):
        spec[key] = None if raw.get(key) is None else _bool(raw[key], key)
    return spec


# ------------------------------------------------------------------------------------------------ per kind
def _inspect_options(o: dict[str, Any], resolve: Resolve) -> dict[str, Any]:
    check_keys(o, ("shapes",), "an inspect job's options")
    return {"shapes": _shapes(o.get("shapes"), "options.shapes")}


def _bench_options(o: dict[str, Any], resolve: Resolve) -> dict[str, Any]:
    check_keys(o, ("iterations", "warmup", "duration_s", "threads", "shapes", "precision", "inputs", "keep_samples"),
          "a bench job's options")
    return {
        "iterations": _int(o.get("iterations", 100), "options.iterations", 1, MAX_ITERATIONS),
        "warmup": _int(o.get("warmup", 10), "options.warmup", 0, MAX_WARMUP),
        "duration_s": _opt_number(o.get("duration_s"), "options.duration_s", MAX_SECONDS),
        "threads": None if o.get("threads") is None else _int(o["threads"], "options.threads", 1, MAX_THREADS),
        "shapes": _shapes(o.get("shapes"), "options.shapes"),
        "precision": None if o.get("precision") is None else _word(o["precision"], "options.precision"),
        "inputs": _inputs(o.get("inputs"), "options.inputs", resolve),
        "keep_samples": _bool(o.get("keep_samples", True), "options.keep_samples"),
    }


def _eval_options(o: dict[str, Any], resolve: Resolve) -> dict[str, Any]:
    check_keys(o, ("dataset", "limit", "inputs"), "an eval job's options")
    return {
        "dataset": _ref(o.get("dataset"), "options.dataset", resolve),
        "limit": None if o.get("limit") is None else _int(o["limit"], "options.limit", 1, MAX_LIMIT),
        "inputs": _inputs(o.get("inputs"), "options.inputs", resolve),
    }


OPTIONS: dict[str, Callable[[dict[str, Any], Resolve], dict[str, Any]]] = {
    "inspect": _inspect_options, "bench": _bench_options, "eval": _eval_options}


def _call_options(o: dict[str, Any], resolve: Resolve, runtimes: Callable[[], list[str]],
                  feeds_limit: int) -> dict[str, Any]:
    check_keys(o, ("function", "kwargs"), "a call job's options")
    function = o.get("function")
    if function not in ALLOWED_CALLS:
        raise RequestError(f"this agent runs bench, eval, inspect and parity jobs, not a call of {show(function)}")
    kwargs = o.get("kwargs") if o.get("kwargs") is not None else {}
    if not isinstance(kwargs, dict):
        raise RequestError("'options.kwargs' must be an object")
    if function == DEVICE_LIST:
        check_keys(kwargs, (), "a device listing")
        return {"function": function, "kwargs": {}}
    check_keys(kwargs, ("model", "runtime", "feeds", "device"), "a parity call")
    return {"function": function, "kwargs": {
        "model": _ref(kwargs.get("model"), "options.kwargs.model", resolve),
        "runtime": _runtime(kwargs.get("runtime"), "options.kwargs.runtime", runtimes),
        "feeds": _feeds(kwargs.get("feeds"), "options.kwargs.feeds", feeds_limit),
        "device": _device(kwargs.get("device", "CPU"), "options.kwargs.device")}}


def _feeds(value: Any, where: str, limit: int) -> str:
    """An encoded npz: base64 of a zip of ``.npy`` members whose declared sizes fit ``limit`` (what they really
    inflate to is counted again where they are decoded, :func:`edgestudio.agent.jobs.decode_arrays`)."""
    import base64
    import binascii
    import io

    from edgestudio.agent.unzip import ZipLimitError, check_declared, open_zip

    if not isinstance(value, str) or not value or len(value) > MAX_FEEDS_CHARS:
        raise RequestError(f"'{where}' must be an encoded npz (base64, at most {MAX_FEEDS_CHARS:,} characters)")
    try:
        with open_zip(io.BytesIO(base64.b64decode(value, validate=True))) as zf:
            check_declared(zf, limit, f"'{where}'")
            names = zf.namelist()
    except (binascii.Error, ValueError) as exc:
        cause = str(exc) if isinstance(exc, ZipLimitError) and str(exc) != "not a zip" else "not an encoded npz"
        raise RequestError(cause if cause.startswith("'") else f"'{where}': {cause}") from None
    if not names or not all(n.endswith(".npy") and n.isprintable() for n in names):
        raise RequestError(f"'{where}': an npz holds .npy arrays only")
    return value


# ---------------------------------------------------------------------------------------------- one field
def check_keys(d: dict[str, Any], allowed: tuple[str, ...], what: str) -> None:
    unknown = sorted(str(k) for k in d if k not in allowed)
    if unknown:
        takes = ", ".join(allowed) or "nothing"
        raise RequestError(f"{what} does not take {show(unknown[0])} (it takes: {takes})")


def _ref(value: Any, where: str, resolve: Resolve) -> str:
    if not isinstance(value, str) or not value.startswith("cas:") or len(value) > MAX_REF_CHARS:
        raise RequestError(f"'{where}' {NOT_A_REF}")
    return resolve(where, value)


def _int(value: Any, where: str, lo: int, hi: int) -> int:
    if type(value) is not int or not lo <= value <= hi:
        raise RequestError(f"'{where}' must be an integer from {lo:,} to {hi:,}")
    return value


def _opt_number(value: Any, where: str, hi: float) -> float | None:
    """None, or a finite number in (0, hi]."""
    if value is None:
        return None
    if type(value) not in (int, float) or not math.isfinite(value) or not 0 < value <= hi:
        raise RequestError(f"'{where}' must be a finite number of more than 0 and at most {hi:,.0f}")
    return float(value)


def _bool(value: Any, where: str) -> bool:
    if type(value) is not bool:
        raise RequestError(f"'{where}' must be true or false")
    return value


def _word(value: Any, where: str) -> str:
    if not isinstance(value, str) or not NAME_RE.fullmatch(value):
        raise RequestError(f"'{where}' must be a name (lower-case letters, digits, '-', '_', '.'; 32 at most)")
    return value


def _runtime(value: Any, where: str, runtimes: Callable[[], list[str]]) -> str:
    name = _word(value, where)
    browser = browser_runtimes()
    have = [r for r in runtimes() if r not in browser]
    if name not in have:
        raise RequestError(f"'{where}': {name!r} is not a runtime a device agent runs (one of: {', '.join(have)})")
    return name


def _device(value: Any, where: str) -> str:
    if isinstance(value, str) and ("@" in value or "agent:" in value.lower()):
        raise RequestError(f"'{where}' {NAMES_AN_AGENT}")
    if not isinstance(value, str) or not DEVICE_RE.fullmatch(value):
        raise RequestError(f"'{where}' must be a device name (letters, digits, '-', '_', '.', ':'; 64 at most)")
    return value


def _input_name(value: Any, where: str) -> str:
    if not isinstance(value, str) or len(value) > MAX_NAME_CHARS or not value.isprintable():
        raise RequestError(f"'{where}' names an input with a name of at most {MAX_NAME_CHARS} printable characters")
    return value


def _shapes(value: Any, where: str) -> dict[str, list[int]]:
    if value is None:
        return {}
    if not isinstance(value, dict) or len(value) > MAX_NAMES:
        raise RequestError(f"'{where}' must be an object of at most {MAX_NAMES} input shapes")
    out: dict[str, list[int]] = {}
    for name, dims in value.items():
        _input_name(name, where)
        if not isinstance(dims, list) or not 1 <= len(dims) <= MAX_RANK:
            raise RequestError(f"'{where}' must give each input a list of 1 to {MAX_RANK} dimensions")
        shape = [_int(d, f"{where} dimensions", 1, MAX_DIM) for d in dims]
        if math.prod(shape) > MAX_ELEMENTS:
            raise RequestError(f"'{where}' gives an input more than {MAX_ELEMENTS:,} elements")
        out[name] = shape
    return out


def _values(value: Any, where: str) -> dict[str, float]:
    if value is None:
        return {}
    if not isinstance(value, dict) or len(value) > MAX_NAMES:
        raise RequestError(f"'{where}' must be an object of at most {MAX_NAMES} input values")
    out: dict[str, float] = {}
    for name, v in value.items():
        _input_name(name, where)
        if type(v) not in (int, float) or not math.isfinite(v) or abs(v) > MAX_VALUE:
            raise RequestError(f"'{where}' must give each input a finite number (at most {MAX_VALUE:g} in size)")
        out[name] = float(v)
    return out


def _inputs(value: Any, where: str, resolve: Resolve) -> dict[str, Any]:
    if value is None:
        return {"data": None, "shapes": {}, "values": {}}
    if not isinstance(value, dict):
        raise RequestError(f"'{where}' must be an object (data, shapes, values)")
    check_keys(value, ("data", "shapes", "values"), f"'{where}'")
    data = value.get("data")
    return {"data": None if data is None else _ref(data, f"{where}.data", resolve),
            "shapes": _shapes(value.get("shapes"), f"{where}.shapes"),
            "values": _values(value.get("values"), f"{where}.values")}


def show(value: Any) -> str:
    """A client's value in an error: its repr, cut short (never a whole payload echoed back)."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_sha(value: Any) -> str:
    if not isinstance(value, str) or not SHA_RE.fullmatch(value):
        raise RequestError("'sha256' must be 64 lower-case hex digits")
    return value


def check_size(value: Any) -> int:
    if type(value) is not int or value < 0:
        raise RequestError("'size' must be the upload's size in bytes (a non-negative integer)")
    return value
