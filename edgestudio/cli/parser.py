"""The argument parser: every command's flags, their bounds, and the flags generated from an options
dataclass. A refused command line raises ``_ArgError`` (one line; exit code 2 in ``main``)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from edgestudio import __version__
from edgestudio.cli.bench import cmd_bench, cmd_compare, cmd_eval, cmd_sweep
from edgestudio.cli.common import _names, _option_fields
from edgestudio.cli.convert import cmd_convert, cmd_inspect
from edgestudio.cli.debug import cmd_debug, cmd_explore, cmd_profile
from edgestudio.cli.optimize import cmd_distill, cmd_optimize, cmd_rescue
from edgestudio.cli.package import cmd_package, cmd_run
from edgestudio.cli.targets import cmd_agent, cmd_devices, cmd_envs, cmd_targets
from edgestudio.cli.workspace import cmd_import, cmd_jobs, cmd_models
from edgestudio.core.catalog import native_runtime
from edgestudio.core.errors import UsageError
from edgestudio.core.formats import ModelFormat


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise _ArgError(f"{message} (usage: {self.prog} --help)")


class _ArgError(Exception):
    """A command line argparse refused: one line, naming the model when the line has one, exit code 2."""


def _bounded(name: str, kind: type = int) -> Callable[[str], Any]:
    """An argparse type: a number within ``safety.LIMITS[name]`` (``--threads 100000`` is refused, not started)."""
    from edgestudio.core.safety import check_number

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a {'whole ' if kind is int else ''}number: {text!r}") from None
        try:
            check_number(name, value)
        except UsageError as exc:
            raise argparse.ArgumentTypeError(exc.cause) from None
        return value

    parse.__name__ = name
    return parse


def _add_input_args(p: argparse.ArgumentParser, what: str = "the run") -> None:
    g = p.add_argument_group("inputs", f"what {what} feeds the model (the same on every command)")
    g.add_argument("--input", metavar="FILE", help=".npz keyed by input name (an array of rank+1 is a stack of "
                                                    "samples), or .npy for a single input")
    g.add_argument("--shape", action="append", metavar="NAME=1,3,224,224",
                   help="the shape of a dynamic input (repeatable; unnamed: the first input)")
    g.add_argument("--value", action="append", metavar="NAME=V", help="an input that holds a fixed value, e.g. "
                                                                      "sr=16000 (repeatable)")
    g.add_argument("--output-kind", action="append", metavar="NAME=KIND",
                   help="what an output is, for the task metrics of the checks: logits, scores, boxes, embedding, "
                        "mask, landmarks or raw (repeatable; remembered with --workspace)")


def _add_option_args(p: argparse.ArgumentParser, target: str, skip: tuple[str, ...] = ()) -> None:
    """One flag per field of an options dataclass, from its declared schema (type, choices, help). Every flag
    defaults to None, so the command knows which options the user gave (and can refuse those that do not apply)."""
    for name, typ, default, meta in _option_fields(target):
        if name in skip:
            continue
        flag = meta.get("flag", "--" + name.replace("_", "-"))
        text = meta.get("flag_help", meta.get("help", ""))
        if typ == "bool":
            p.add_argument(flag, dest=name, action="store_false" if default else "store_true", default=None, help=text)
        elif typ.startswith("list"):
            p.add_argument(flag, dest=name, metavar="NAMES", type=lambda v: _names(v) or [], default=None,
                           help=text + " (comma-separated)")
        else:
            conv = int if typ.startswith("int") else float if typ.startswith("float") else str
            p.add_argument(flag, dest=name, type=conv, choices=meta.get("choices"), default=None,
                           metavar=None if meta.get("choices") else meta.get("metavar", name.split("_")[-1].upper()),
                           help=text + (f" (default {default})" if default not in (None, "", []) else ""))


def build_parser() -> argparse.ArgumentParser:
    from edgestudio.core import catalog  # plain data: the choices below come from the backend catalog

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    common.add_argument("--workspace", metavar="DIR", help="record the job, its artifacts and results in this "
                                                           "workspace (run through the worker pool)")
    common.add_argument("--verbose", action="store_true", help="let the libraries' own log lines through to "
                                                                "stderr (kept in a log file by default)")
    common.add_argument("--timeout", type=_bounded("timeout", float), metavar="SECONDS",
                        help="stop the job (its worker) after this many seconds; default: no limit")
    common.add_argument("--overwrite", action="store_true", help="let -o replace an existing file (refused by "
                                                                  "default; a folder is never replaced)")
    common.add_argument("--trust-model", action="store_true", help="run a TensorFlow model even though its graph "
                                                                    "holds ops that reach the file system or run "
                                                                    "Python (refused by default)")
    target = argparse.ArgumentParser(add_help=False)
    target.add_argument("--env", "--target", dest="env", metavar="NAME",
                        help="run on this execution target: a Python environment (`edgestudio envs`; env:NAME or "
                             "NAME), a remote device (agent:NAME, `edgestudio devices`) or local (default); "
                             "`edgestudio targets` lists them")
    ap = _Parser(prog="edgestudio", description="EdgeStudio: take a trained model to an edge device. "
                                                "Without a command, the studio opens.")
    ap.add_argument("--version", action="version", version=f"edgestudio {__version__}")
    sub = ap.add_subparsers(dest="command", parser_class=_Parser)

    p = sub.add_parser("inspect", parents=[common, target], help="describe a model: I/O, ops, parameters, MACs")
    p.add_argument("model", help="model file or folder (format detected from content)")
    p.add_argument("--shape", action="append", metavar="NAME=1,3,224,224",
                   help="fix a dynamic input's shape for the MACs count (repeatable)")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("devices", parents=[common], help="every device the installed runtimes (and the remote "
                                                        "devices) see; add|list|remove remote devices (agents)")
    p.add_argument("action", nargs="?", choices=["add", "list", "remove", "missing"],
                   help="missing: the runtimes this installation cannot use yet and the command that adds each")
    p.add_argument("name", nargs="?", help="the device's name (its target: agent:NAME)")
    p.add_argument("--host", help="add: the agent's host name or address")
    p.add_argument("--port", type=_bounded("port"), default=8765, help="add: the agent's port (default 8765)")
    p.add_argument("--token", help="add: the token the agent printed at its first start")
    p.add_argument("--tls", action="store_true", help="add: the agent serves TLS (wss://)")
    p.add_argument("--no-check", action="store_true", help="add: do not connect to check it now")
    p.set_defaults(func=cmd_devices)

    p = sub.add_parser("agent", parents=[common], help="run on an edge device: serve EdgeStudio's bench, eval, "
                                                      "inspect and parity jobs to the studio")
    p.add_argument("action", choices=["serve"])
    from edgestudio.agent.server import add_serve_args

    add_serve_args(p)
    p.set_defaults(func=cmd_agent)

    p = sub.add_parser("bench", parents=[common, target], help="measure latency, throughput, load time and memory")
    p.add_argument("model")
    p.add_argument("--runtime", choices=catalog.runtime_names(),
                   help="default: the natural runtime for the model's format")
    p.add_argument("--device", default="CPU")
    p.add_argument("--iterations", type=_bounded("iterations"), default=100)
    p.add_argument("--warmup", type=_bounded("warmup"), default=10)
    p.add_argument("--duration", type=_bounded("duration", float), help="run for this many seconds instead of a fixed count")
    p.add_argument("--threads", type=_bounded("threads"), help="intra-op threads (default: the runtime's choice)")
    p.add_argument("--precision", help="inference precision hint where supported (OpenVINO: f32, bf16, f16)")
    p.add_argument("--browser", choices=["chromium", "qtwebengine"],
                   help="browser runtimes (ort-web, tfjs): the browser to run in (default: Chromium/Chrome when "
                        "installed, else QtWebEngine)")
    p.add_argument("--throughput", action="store_true", help="throughput mode: overlapping requests, a batch x "
                                                            "streams grid of samples/s and request latency")
    p.add_argument("--batch", metavar="1,4,8", help="--throughput: batch sizes (default 1)")
    p.add_argument("--streams", metavar="1,2", help="--throughput: parallel requests (OpenVINO streams; ONNX "
                                                   "Runtime/LiteRT threads), default 1,2")
    _add_input_args(p, "the benchmark")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("convert", parents=[common, target], help="convert to another format, checking every hop's numbers")
    p.add_argument("model")
    p.add_argument("--to", required=True, help="onnx, tflite, openvino, ort, savedmodel, tfjs")
    p.add_argument("-o", "--output", help="output path (default: beside the model, never overwriting)")
    p.add_argument("--via", action="append", metavar="FORMAT", help="go through this format (repeatable)")
    p.add_argument("--simplify", action="store_true", help="simplify the ONNX hop with onnxslim")
    p.add_argument("--opset", type=_bounded("opset"), help="ONNX opset to produce")
    _add_input_args(p, "the parity checks (and --shape: converters that can fix a shape)")
    p.add_argument("--layout", choices=["auto", "nchw", "nhwc"], default="auto",
                   help="NCHW/NHWC handling where the converter offers it")
    p.add_argument("--input-names", help="comma-separated new input names (ONNX results)")
    p.add_argument("--output-names", help="comma-separated new output names (ONNX results)")
    p.add_argument("--fp16", action="store_true", help="OpenVINO IR: FP16 weights")
    p.add_argument("--tfjs-quantization", choices=["none", "float16", "uint8"], default="none",
                   help="TF.js: float16 or uint8 weights (smaller download; checked with a cosine floor)")
    p.add_argument("--allow-tf-ops", action="store_true", help="TFLite: allow TensorFlow ops (Flex delegate)")
    p.add_argument("--executorch-delegate", choices=["xnnpack", "none"], default="xnnpack",
                   help="ExecuTorch: lower to XNNPACK (default), or none: portable ops only, compared op by op by debug")
    p.add_argument("--tvm-trials", type=_bounded("tvm_trials"), default=0, help="TVM: MetaSchedule tuning trials (0: untuned)")
    p.add_argument("--tvm-minutes", type=_bounded("tvm_minutes", float), help="TVM: stop tuning after this many minutes (keeps what was measured)")
    p.add_argument("--tolerance", type=float, help="max abs diff accepted by the parity check")
    p.add_argument("--no-validate", action="store_true", help="skip the parity check")
    p.add_argument("--plan", action="store_true", help="only show the conversion path")
    p.add_argument("--int8", action="store_true", help="with --to tflite: a full-integer TFLite model (what TFLite "
                                                       "Micro runs), calibrated on --calibration")
    p.add_argument("--calibration", metavar="DATA", help="--int8: calibration samples (.npz/.npy, image folder)")
    p.add_argument("--io-type", choices=["float", "int8", "uint8"], help="--int8: the model's input/output type "
                                                                         "(default float; int8 for a microcontroller)")
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("optimize", parents=[common, target], help="quantize / compress / prune for a runtime, with an "
                                                          "accuracy guard; --auto picks the fastest variant")
    p.add_argument("model")
    p.add_argument("--method", choices=catalog.methods())
    p.add_argument("--auto", action="store_true", help="try the sensible variants, measure, return the fastest")
    p.add_argument("--runtime", help=f"{', '.join(catalog.runtime_names(optimizing=True))} (auto: also 'any'); "
                                     "default from the format")
    _add_option_args(p, "edgestudio.backends.optimizers.base:OptimizeOptions", skip=("inputs",))
    p.add_argument("--iterations", type=_bounded("iterations"), default=200, help="auto: benchmark iterations per candidate")
    p.add_argument("-o", "--output", help="output path (default: beside the model)")
    _add_input_args(p, "calibration (other inputs) and the drift check")
    p.set_defaults(func=cmd_optimize)

    p = sub.add_parser("eval", parents=[common, target], help="top-1/top-5 accuracy on a labeled dataset")
    p.add_argument("model")
    p.add_argument("--dataset", required=True, metavar="DATA")
    p.add_argument("--runtime")
    p.add_argument("--device", default="CPU")
    p.add_argument("--limit", type=_bounded("limit"), help="evaluate the first N samples only")
    _add_input_args(p, "the model's other inputs (the dataset feeds the first)")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("compare", parents=[common, target], help="benchmark variants x runtimes side by side (Pareto front)")
    p.add_argument("models", nargs="+")
    p.add_argument("--runtime", action="append", help="repeatable; default: each model's own runtime")
    p.add_argument("--dataset", metavar="DATA", help="labeled data: adds top-1 and the accuracy/latency Pareto front")
    p.add_argument("--device", action="append", help="repeatable: e.g. CPU and CPU@agent:pi side by side "
                                                     "(default CPU; `edgestudio devices` lists them)")
    p.add_argument("--iterations", type=_bounded("iterations"), default=100)
    p.add_argument("--threads", metavar="N[,N..]|all", help="a thread sweep: each variant at each count (default: the "
                                                             "same count on every runtime, this machine's cores)")
    p.add_argument("--browser", choices=["chromium", "qtwebengine"], help="the browser of the browser runtimes")
    p.add_argument("--no-paired", action="store_true", help="skip the final paired round (all local variants "
                                                           "loaded once, timed in alternating blocks, ranked with CIs)")
    _add_input_args(p, "every benchmark")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("sweep", parents=[common, target], help="models x runtimes x devices x threads from a YAML "
                                                                "file, on the local pool or a Ray cluster")
    p.add_argument("config", help="the sweep file (YAML or JSON: models, runtimes, devices, threads, iterations, "
                                  "dataset)")
    p.add_argument("--executor", choices=["local", "ray"], default="local",
                   help="ray: each job a Ray task (a local cluster, or --address); benchmarks get a node alone")
    p.add_argument("--address", help="a running Ray cluster (ray://host:10001 or host:6379)")
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("debug", parents=[common], help="per-layer comparison of a converted or quantized model "
                                                      "with its parent: the first layer where they part")
    p.add_argument("child", help="the converted or quantized model (ONNX, OpenVINO IR, TFLite)")
    p.add_argument("--parent", help="the model it was made from")
    p.add_argument("--chain", action="store_true", help="every hop of the child's lineage in --workspace, and the "
                                                        "whole chain: the hop where accuracy left")
    p.add_argument("--samples", type=_bounded("samples"), default=4, help="input samples to run (from --input when given)")
    _add_input_args(p, "both models (real data: a verdict that means something)")
    p.set_defaults(func=cmd_debug)

    p = sub.add_parser("profile", parents=[common], help="time per layer and per op type, from the runtime's own "
                                                        "profiler (ONNX Runtime, OpenVINO)")
    p.add_argument("model")
    p.add_argument("--runtime", choices=catalog.runtime_names(), help="default: the format's own")
    p.add_argument("--runs", type=_bounded("runs"), default=50, help="profiled runs (after 5 warm-up runs)")
    p.add_argument("--threads", type=_bounded("threads"))
    _add_input_args(p, "the profiled runs")
    p.set_defaults(func=cmd_profile)

    p = sub.add_parser("explore", parents=[common], help="the graph in Google's Model Explorer on localhost (offline), "
                                                        "or a parent and its child side by side with debug's and "
                                                        "profile's figures on their nodes; Ctrl-C stops it")
    p.add_argument("models", nargs="+", metavar="MODEL", help="an ONNX or TFLite model; with a second, the parent "
                                                              "first and then the child made from it")
    p.add_argument("--debug", action="store_true", help="paint each node's cosine to its twin and each layer's own "
                                                        "error (the per-layer comparison of `debug`)")
    p.add_argument("--profile", action="store_true", help="paint each node's time (`profile`, where the runtime has "
                                                          "a profiler)")
    p.add_argument("--samples", type=_bounded("samples"), default=4, help="--debug: input samples to run")
    p.add_argument("--runs", type=_bounded("runs"), default=50, help="--profile: profiled runs")
    p.add_argument("--port", type=int, default=0, help="serve on this loopback port (default: a free one)")
    p.add_argument("--no-browser", action="store_true", help="print the URL only; do not open the web browser")
    p.add_argument("--save-node-data", metavar="DIR", help="write Model Explorer's node-data files in DIR and stop "
                                                           "(no server; load them in any Model Explorer)")
    _add_input_args(p, "--debug and --profile")
    p.set_defaults(func=cmd_explore)

    p = sub.add_parser("rescue", parents=[common], help="INT8 with the fewest layers kept in float so the accuracy "
                                                       "guard passes (searched with the per-layer comparison)")
    p.add_argument("model", help="the float model: ONNX (onnxruntime, openvino), OpenVINO IR (openvino), Keras or "
                                 "SavedModel (litert)")
    p.add_argument("--runtime", default=native_runtime(ModelFormat.ONNX.value),
                   help="whose INT8, among the runtimes that can keep layers in "
                   "float (onnxruntime: nodes_to_exclude, openvino: NNCF ignored_scope, litert: the TFLite debugger's "
                   "denylist; default onnxruntime)")
    p.add_argument("--max-steps", type=_bounded("max_steps"), default=8, help="at most this many attempts after plain "
                                                                              "INT8 (each keeps one more blamed layer)")
    p.add_argument("--budget", type=_bounded("duration", float), default=600.0,
                   help="seconds: no attempt is started that would end past it (default 600)")
    _add_option_args(p, "edgestudio.backends.optimizers.base:OptimizeOptions", skip=("inputs",))
    p.add_argument("-o", "--output", help="the rescued model (default: beside the model)")
    _add_input_args(p, "the per-layer comparison")
    p.set_defaults(func=cmd_rescue)

    p = sub.add_parser("run", parents=[common], help="replay a recipe (steps with their options, input spec and "
                                                    "quality gates); exit code 1 when a gate fails")
    p.add_argument("recipe", help="a recipe YAML (File ▸ Export recipe in the studio, or written by hand)")
    p.add_argument("-o", "--out", "--output", dest="output", help="folder for the artifacts (default: RECIPE_out "
                                                                  "beside the recipe); every step writes under it; "
                                                                  "with --workspace they join its lineage instead")
    p.add_argument("--plan", action="store_true", help="show what the recipe reads, writes and runs; run nothing")
    p.add_argument("--allow-outside", action="store_true", help="let the recipe read files outside its own folder "
                                                                "(absolute or '..' paths: refused by default)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("distill", parents=[common], help="knowledge distillation: train a smaller Keras student to "
                                                        "match the teacher's soft outputs on unlabeled inputs")
    p.add_argument("model", help="the Keras teacher (.keras, .h5)")
    p.add_argument("--data", required=True, help="unlabeled inputs: .npz with an 'x' array (or .npy)")
    p.add_argument("--student", help="a Keras student model (default: the teacher's architecture at --width)")
    p.add_argument("--width", type=float, default=0.5, help="the student's width multiplier (filters and units)")
    p.add_argument("--temperature", type=float, default=4.0, help="softens both models' outputs")
    p.add_argument("--epochs", type=_bounded("epochs"), default=30)
    p.add_argument("--batch-size", type=_bounded("batch_size"), default=64)
    p.add_argument("--dataset", metavar="DATA", help="labeled data: top-1 of teacher and student afterwards")
    p.add_argument("-o", "--output", help="the student (.keras; default: beside the teacher)")
    p.set_defaults(func=cmd_distill)

    p = sub.add_parser("package", parents=[common, target], help="a deployment zip: model, standalone runner, pinned "
                                                         "requirements, reports, lineage (and TFLite Micro sources)")
    p.add_argument("model")
    p.add_argument("--runtime", choices=catalog.runtime_names(packaged=True), help="default: from the format")
    p.add_argument("-o", "--output", help="the zip (default: beside the model)")
    p.add_argument("--dataset", metavar="DATA", help="labeled data: adds accuracy to the report")
    p.add_argument("--iterations", type=_bounded("iterations"), default=100, help="benchmark iterations for the report")
    p.add_argument("--tflm", action="store_true", help="add TensorFlow Lite Micro C sources (TFLite models)")
    _add_input_args(p, "the package's sample input and benchmark")
    p.set_defaults(func=cmd_package)

    p = sub.add_parser("envs", parents=[common], help="Python environments jobs can run in: list, create NAME "
                                                     "REQUIREMENT..., check NAME, remove NAME")
    p.add_argument("action", nargs="?", choices=["list", "create", "check", "remove"], default="list")
    p.add_argument("name", nargs="?")
    p.add_argument("requirements", nargs="*", help="pinned requirements (pip), e.g. onnxruntime==1.23.2")
    p.set_defaults(func=cmd_envs)

    p = sub.add_parser("targets", parents=[common], help="where jobs can run: this Python (local), each "
                                                        "Python environment, each remote device")
    p.set_defaults(func=cmd_targets)

    p = sub.add_parser("jobs", parents=[common], help="job history of a workspace (default: the user's)")
    p.add_argument("--limit", type=_bounded("limit"), default=None)
    p.set_defaults(func=cmd_jobs)

    p = sub.add_parser("models", parents=[common], help="models and derived artifacts of a workspace, as a tree")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("import", parents=[common], help="add models to a workspace (copied unless --reference)")
    p.add_argument("models", nargs="+")
    p.add_argument("--reference", action="store_true", help="record where the file is instead of copying it")
    p.set_defaults(func=cmd_import)
    return ap

