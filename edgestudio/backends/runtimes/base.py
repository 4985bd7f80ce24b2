"""The runtime interface: a runtime loads a model onto a device and returns a :class:`Session`."""

from __future__ import annotations

import abc
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from edgestudio.backends.intermediates import Tensor
from edgestudio.backends.registry import Registry, Requirements
from edgestudio.core.errors import RuntimeUnavailableError, UsageError
from edgestudio.core.formats import ModelFormat
from edgestudio.core.modelinfo import TensorSpec


@dataclass(frozen=True)
class DeviceInfo:
    runtime: str
    device: str
    description: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


class Session(abc.ABC):
    """A model loaded and compiled on one device, ready to run."""

    runtime: str
    device: str
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    precision: str | None = None

    @abc.abstractmethod
    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run once; returns outputs by name, in the model's output order."""

    @abc.abstractmethod
    def bind(self, feeds: dict[str, np.ndarray]) -> Callable[[], Any]:
        """Prepare ``feeds`` once and return the bare inference call, for timing loops."""


class Runtime(Requirements, abc.ABC):
    name: ClassVar[str]
    label: ClassVar[str]
    formats: ClassVar[frozenset[ModelFormat]]
    #: it runs in a browser on the studio's machine (never on a device agent), timed in the page
    in_browser: ClassVar[bool] = False
    #: Python source of ``load(model, precision) -> (input names, run(feeds) -> first output)`` for the
    #: standalone runner of a deployment package (None: no packages for this runtime)
    package_loader: ClassVar[str | None] = None
    #: what a deployment package of it is: "python" (run.py around ``package_loader``) or "web" (a static folder)
    package_kind: ClassVar[str] = "python"
    #: a section the package's README adds for this runtime (``{model}``: the packaged file's name)
    package_readme: ClassVar[str] = ""
    #: a "web" package (packaging/web.py): the runtime's vendored files it carries ((kind, file) of
    #: backends.browser.RUNTIME_FILES, copied into ``web_dir``), whether the model goes in as its file ("file",
    #: renamed safely) or as its folder ("folder": model.json and its shards), and the native runtime whose output
    #: the package's page must equal within ``web_atol``
    web_files: ClassVar[tuple[tuple[str, str], ...]] = ()
    web_dir: ClassVar[str] = ""
    web_model: ClassVar[str] = "file"
    web_reference: ClassVar[str | None] = None
    web_atol: ClassVar[float] = 1e-4

    @classmethod
    def web_page(cls, *, title: str, version: str, model_js: str, external_js: str) -> str:
        """A web package's index.html: ``title`` and ``version`` are HTML-escaped text, ``model_js`` and
        ``external_js`` JavaScript literals (the packaged model's file name, its external data files)."""
        raise NotImplementedError(f"{cls.name} makes no web package")

    @abc.abstractmethod
    def devices(self) -> list[DeviceInfo]:
        """Every device this runtime sees on this machine."""

    @abc.abstractmethod
    def load(self, path: str | Path, *, device: str = "CPU", threads: int | None = None,
             precision: str | None = None) -> Session:
        """Load ``path`` on ``device``. ``precision`` is a hint ("f32", "f16", "bf16") where supported."""

    def check_device(self, device: str) -> str:
        names = {d.device.upper(): d.device for d in self.devices()}
        key = device.upper()
        if key not in names:
            raise RuntimeUnavailableError(
                None, f"{self.name} has no device {device!r} (available: {', '.join(names.values()) or 'none'})")
        return names[key]

    # ---- what a runtime can do besides running a model. Engines ask these, never a runtime's name: a runtime
    # declared in the catalog (an extra catalog file included) works in bench, compare, throughput, profile,
    # parity and auto-optimize through them.

    #: largest output difference its kernels make on an exact model (parity's "exact" tolerance); None: the
    #: converter's own tolerance
    output_atol: ClassVar[float | None] = None
    #: why it has no per-op profiler, when it has none (said instead of a guess)
    no_profiler: ClassVar[str | None] = None

    @classmethod
    def can_profile(cls) -> bool:
        return cls.profile_ops is not Runtime.profile_ops

    def profile_ops(self, path: Path, feeds: dict[str, np.ndarray], *, runs: int,
                    threads: int | None) -> OpTimes:
        """Per-op times from the runtime's own profiler, over ``runs`` runs after a warm-up."""
        raise UsageError(path, self.no_profiler or f"{self.name} exposes no per-op profiler")

    #: the formats whose intermediate tensors it exposes (:meth:`intermediate_tensors`: per-layer comparison)
    exposes: ClassVar[frozenset[ModelFormat]] = frozenset()

    def intermediate_tensors(self, path: Path, feeds: list[dict[str, np.ndarray]]) -> list[Tensor]:
        """The graph inputs (op ``Input``) and every float intermediate a model of one of ``exposes`` computes on
        each of ``feeds``, in graph order (see :mod:`edgestudio.backends.intermediates`)."""
        raise UsageError(path, f"{self.name} exposes no intermediate tensors")

    def default_precision(self, isa: set[str]) -> str | None:
        """What its CPU device's default precision means on a CPU with these ISA flags (None: no precision
        hint exists). Auto-optimize measures a default and an explicit hint once when they are the same."""
        return None

    @classmethod
    def native_format(cls) -> ModelFormat | None:
        """Its own format: the catalog's first ``native`` one, what its optimizers write (None: it has none)."""
        from edgestudio.core.catalog import output_format

        fmt = output_format(cls.name)
        return ModelFormat(fmt) if fmt else None

    # mixed-precision rescue (edgestudio.optimization.rescue): its INT8 quantizer keeps the layers the per-layer
    # comparison blames in float (the ``ignored_scope`` option), compared in its own format

    @classmethod
    def can_rescue(cls) -> bool:
        """Whether the mixed-precision rescue runs on it (it implements :meth:`rescue_reference` and
        :meth:`rescue_scope`)."""
        return cls.rescue_reference is not Runtime.rescue_reference and cls.rescue_scope is not Runtime.rescue_scope

    def rescue_reference(self, parent: Path, work: Path) -> tuple[Path, Path]:
        """(the model its INT8 quantizer starts from, the float model in its quantizer's format that each attempt
        is compared with layer by layer) for the float model ``parent``; what has to be made is made in ``work``.
        Raises an error naming ``parent`` when the rescue does not start from a model of its format."""
        raise UsageError(parent, f"{self.name} has no mixed-precision rescue")

    def rescue_scope(self, reference: Path, child: Path, item: dict[str, Any],
                     pairs: list[dict[str, Any]]) -> list[str]:
        """What its quantizer's ``ignored_scope`` takes to keep in float the layer ``item`` blames, as that quantizer
        names it: the weighted op behind it, then the weighted op feeding that one (the tensor between them is
        quantized while either is). ``item`` is a :func:`~edgestudio.bench.layers.blamed_layers` entry or one of
        ``pairs``, the comparison of ``child`` (an attempt) with ``reference`` (:meth:`rescue_reference`'s
        second model); see :func:`blamed_op`."""
        raise UsageError(child, f"{self.name} has no mixed-precision rescue")

    def throughput_run(self, path: Path, feeds: dict[str, np.ndarray], *, batch: int, streams: int,
                       cores: int, duration_s: float, cancel: Any) -> tuple[list[float], float, int]:
        """Overlapping requests for ``duration_s``: (per-request latencies in ms, wall seconds, threads per
        stream). The default: one session per stream (a session need not be thread-safe), each in a thread of
        its own, the cores split evenly. Runtimes with their own parallel-request machinery override it."""
        per = max(1, cores // streams)
        calls = []
        for _ in range(streams):
            call = self.load(path, threads=per).bind(feeds)
            call()
            calls.append(call)
        t0 = time.perf_counter()
        lat = threaded_calls(calls, duration_s, cancel)
        return lat, time.perf_counter() - t0, per


    def benchmark(self, session: Session, feeds: dict[str, np.ndarray], *, iterations: int, warmup: int,
                  duration_s: float | None = None, on_sample: SampleCallback | None = None,
                  cancel: Any = None, progress: Callable[[float, str], None] = lambda f, m="": None) -> Measured:
        """Measure ``session`` on ``feeds``: first inference, ``warmup`` untimed runs, then ``iterations`` timed
        ones (or ``duration_s`` seconds), each latency handed to ``on_sample`` as it is measured. The default is
        a timed loop in this process; runtimes that run elsewhere (a device, a browser) override it and report
        the latencies measured there."""
        call = session.bind(feeds)
        t0 = time.perf_counter()
        call()
        first_ms = (time.perf_counter() - t0) * 1e3
        progress(0.05, f"warm-up (at least {warmup}, until steady)")
        warm, steady = warm_up(call, warmup, cancel)
        t_start = time.perf_counter()
        lat = timed_loop(call, iterations if not duration_s else 1_000_000, duration_s, on_sample, cancel,
                         lambda f, m: progress(0.1 + 0.9 * f, m))
        return Measured(first_ms, lat, time.perf_counter() - t_start, warm, steady)


@dataclass
class OpTimes:
    """What :meth:`Runtime.profile_ops` returns: per node, its times (ms, one per profiled run), op type and the
    kernel or device that ran it; and the wall time of each profiled run (ms)."""

    per_node: dict[str, list[float]]
    types: dict[str, str]
    kernels: dict[str, str | None]
    walls_ms: list[float]


def blamed_op(item: dict[str, Any]) -> tuple[str | None, str | None, str | None]:
    """(node, output tensor, upstream weighted node) of the weighted op one item of the per-layer comparison blames:
    a :func:`~edgestudio.bench.layers.blamed_layers` entry (it has ``via``) names them itself, a compared pair with
    its ``blame_*`` keys. All None where the comparison blames no weighted op."""
    if "via" in item:
        return item.get("node"), item.get("tensor"), item.get("upstream")
    return item.get("blame_node"), item.get("blame_tensor"), item.get("blame_upstream")


def threaded_calls(calls: list[Callable[[], Any]], duration_s: float, cancel: Any) -> list[float]:
    """Each call in a loop of its own thread for ``duration_s``; every call's latency (ms)."""
    import threading

    lat: list[list[float]] = [[] for _ in calls]
    stop = time.perf_counter() + duration_s

    def loop(i: int) -> None:
        call, out = calls[i], lat[i]
        while time.perf_counter() < stop and not (cancel is not None and cancel.cancelled):
            t0 = time.perf_counter()
            call()
            out.append((time.perf_counter() - t0) * 1e3)

    threads = [threading.Thread(target=loop, args=(i,), daemon=True) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [x for part in lat for x in part]


@dataclass
class Measured:
    """What :meth:`Runtime.benchmark` returns: first inference (ms), the latencies (ms), the wall time (s)."""

    first_ms: float
    samples_ms: np.ndarray
    wall_s: float
    warmup_runs: int | None = None  # how many untimed runs came first (None: the runtime did not say)
    steady: bool | None = None  # whether the warm-up reached a steady state before the cap


def steady_state(samples_ms: Any, *, window: int = 10, tolerance: float = 0.05, stable_windows: int = 4) -> int | None:
    """The index from which a latency series is steady: the start of the first ``stable_windows`` consecutive
    windows of ``window`` samples whose medians all lie within ``tolerance`` (relative) of each other (a drift
    never settles: None). None also when there are too few samples yet: keep warming up."""
    a = np.asarray(samples_ms, dtype=np.float64)
    n = a.size // window
    if n < stable_windows:
        return None
    med = np.median(a[: n * window].reshape(n, window), axis=1)
    for i in range(n - stable_windows + 1):
        run = med[i:i + stable_windows]
        if float(run.max() - run.min()) <= tolerance * max(float(np.median(run)), 1e-12):
            return i * window
    return None


WARMUP_CAP_RUNS = 500
WARMUP_CAP_S = 10.0


def warm_up(call: Callable[[], Any], minimum: int, cancel: Any = None) -> tuple[int, bool | None]:
    """Run ``call`` at least ``minimum`` times, then on until its latency is steady (four windows of ten runs
    whose medians agree within 5 %; at most 500 runs or 10 s): caches, JIT paths and clocks settle first.
    ``minimum`` 0 means no warm-up at all (the user asked for cold numbers). Returns (runs, steady)."""
    if minimum <= 0:
        return 0, None
    clock = time.perf_counter
    deadline = clock() + WARMUP_CAP_S
    times: list[float] = []
    while True:
        t0 = clock()
        call()
        times.append(clock() - t0)
        n = len(times)
        if cancel is not None and n % 10 == 0:
            cancel.check()
        if n >= minimum and n % 10 == 0 and steady_state(times[-40:]) is not None:
            return n, True
        if n >= max(minimum, WARMUP_CAP_RUNS) or (n >= minimum and clock() > deadline):
            return n, False


SampleCallback = Callable[[int, float], None]


def timed_loop(call: Callable[[], Any], iterations: int, duration_s: float | None = None,
               on_sample: SampleCallback | None = None, cancel: Any = None,
               progress: Callable[[float, str], None] = lambda f, m="": None) -> np.ndarray:
    """Time ``call`` repeatedly; returns latencies in ms. The timed region holds the bare call only."""
    clock = time.perf_counter_ns
    out = np.empty(iterations, dtype=np.float64)
    deadline = clock() + int(duration_s * 1e9) if duration_s else None
    check = cancel.check if cancel is not None else None
    report_every = max(1, iterations // 100)
    # for a duration, iterations is only a cap (millions): progress is said by time, four times a second
    next_report, report_ns = 0, 250_000_000
    n = 0
    for n in range(iterations):
        t0 = clock()
        call()
        t1 = clock()
        ms = (t1 - t0) / 1e6
        out[n] = ms
        if on_sample is not None:
            on_sample(n, ms)
        if (n % report_every == 0) if deadline is None else (t1 >= next_report):
            next_report = t1 + report_ns
            if check is not None:
                check()
            if deadline is None:
                progress(n / iterations, f"iteration {n}/{iterations}")
            else:
                left_s = max(0.0, (deadline - t1) / 1e9)
                progress(min(1.0, 1 - left_s / duration_s),  # type: ignore[operator]
                         f"{n + 1} runs, {duration_s - left_s:.0f} of {duration_s:g} s")
        if deadline is not None and t1 >= deadline:
            return out[: n + 1]
    return out[: n + 1] if iterations else out


RUNTIMES: Registry[Runtime] = Registry("edgestudio.backends.runtimes", key=lambda cls: cls.name)


def get_runtime(name: str) -> Runtime:
    try:
        cls = RUNTIMES.get(name)
    except KeyError:
        raise UsageError(None, f"unknown runtime {name!r} (one of: {', '.join(sorted(RUNTIMES.all()))})") from None
    missing = cls.missing_packages()
    if missing:
        raise RuntimeUnavailableError(None, f"runtime {name} needs {', '.join(missing)}, which is not installed")
    return cls()


def runtime_for_format(fmt: ModelFormat) -> str:
    """The default runtime for a format: its native one, else any installed runtime that runs it."""
    from edgestudio.core.catalog import native_runtime

    runtimes = RUNTIMES.all()
    native = native_runtime(fmt.value)
    candidates = ([native] if native else []) + sorted(runtimes)
    for name in candidates:
        cls = runtimes.get(name)
        if cls and fmt in cls.formats and cls.available():
            return name
    raise RuntimeUnavailableError(None, f"no installed runtime runs {fmt.label} models")


def runtimes_for_format(fmt: ModelFormat) -> list[str]:
    """Every installed runtime that runs a format, its native one first (to compare backends)."""
    from edgestudio.core.catalog import native_runtime

    runtimes = RUNTIMES.all()
    native = native_runtime(fmt.value)
    names = ([native] if native else []) + sorted(n for n in runtimes if n != native)
    return [n for n in names if n in runtimes and fmt in runtimes[n].formats and runtimes[n].available()]


def list_devices() -> list[DeviceInfo]:
    """Every device the runtimes installed here see; a runtime of another Python environment (ready) shows as
    one CPU entry naming the environment (its library is not importable in this process)."""
    from edgestudio.core.catalog import current_env

    out: list[DeviceInfo] = []
    for name, cls in sorted(RUNTIMES.all().items()):
        if not cls.available():
            continue
        env = cls.env()
        if env not in ("default", current_env()):
            out.append(DeviceInfo(name, "CPU", f"{cls.label} in the '{env}' Python environment"))
            continue
        out.extend(cls().devices())
    return out


def device_dicts() -> list[dict[str, str]]:
    """:func:`list_devices` as plain data (for a job: the GUI lists devices without importing runtimes)."""
    return [d.to_dict() for d in list_devices()]


def output_dict(specs: list[TensorSpec], values: list[Any]) -> dict[str, np.ndarray]:
    return {s.name: np.asarray(v) for s, v in zip(specs, values)}


def check_precision(runtime: str) -> str | None:
    """The precision hint for numerical checks on ``runtime`` (OpenVINO: f32, not its CPU default bf16)."""
    from edgestudio.core.catalog import runtime as decl

    d = decl(runtime)
    return d.check_precision if d else None
