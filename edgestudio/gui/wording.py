"""The core speaks the command line's words ("give --shape x=1,3,H,W", "samples of your --input", "pick another
--runtime"): the studio says the same in its own terms, and names the control that fixes it. One place maps one
vocabulary to the other, so every panel (Jobs, Optimize, the wizard, the details, the status bar) says the same."""

from __future__ import annotations

import re
from dataclasses import dataclass

#: (pattern, the studio's words), applied in order; the most specific phrases first
_PHRASES: tuple[tuple[str, str], ...] = (
    (r"give its shape with --shape (\S+)=(\S+) \(or real data with --input\)",
     r"set its shape (\1 = \2) in Details ▸ Inputs to use, or give real data there"),
    (r"fix the dynamic dims with --shape NAME=dims \(or real data with --input\)",
     "set the shape of each dynamic input in Details ▸ Inputs to use (or give real data there)"),
    (r"give --shape / --value / --input", "set the inputs in Details ▸ Inputs to use"),
    (r"give --value NAME=V / --shape", "set it in Details ▸ Inputs to use"),
    (r"give --shape (\S+)=\.\.\.", r"set the shape of \1 in Details ▸ Inputs to use"),
    (r"needs --shape for ([^()]+?) \(dynamic dims\)", r"needs a shape for \1 (dynamic dims: Details ▸ Inputs to use)"),
    (r"samples of your --input", "samples of the model's input data (Details ▸ Inputs to use)"),
    (r"your --input", "the model's input data"),
    (r"held-out samples of --dataset", "held-out samples of the evaluation data"),
    (r"or pick another --runtime", "or pick another runtime (Optimize ▸ runtime)"),
    (r"give --runtime", "pick a runtime (Optimize ▸ runtime)"),
    (r"--runtime (\S+)", r"the \1 runtime"),
    (r"needs labeled data: --dataset DATA", "needs labeled data: choose it in Optimize ▸ evaluation"),
    (r"needs calibration data: --calibration DATA", "needs calibration data: choose it in Optimize ▸ calibration"),
    (r"give --input, --dataset or real --calibration samples",
     "give real data in Details ▸ Inputs to use, evaluation data or real calibration samples"),
    (r"--dataset DATA", "evaluation data (Optimize ▸ evaluation)"),
    (r"give --dataset", "give evaluation data (Optimize ▸ evaluation)"),
    (r"or --dataset", "or evaluation data"),
    (r"--calibration DATA", "calibration data (Optimize ▸ calibration)"),
    (r"real --calibration samples", "real calibration samples"),
    (r"with --calibration", "in Optimize ▸ calibration"),
    (r"--calibration", "calibration data"),
    (r"--dataset", "evaluation data"),
    (r"give real (?:inputs|ones) with --input", "give real inputs in Details ▸ Inputs to use"),
    (r"real data with --input", "real data in Details ▸ Inputs to use"),
    (r"--input, --dataset", "input data, evaluation data"),
    (r"give the value it takes with --value (\S+)=V", r"set the value of \1 in Details ▸ Inputs to use"),
    (r"--value (\S+)=(\S+)", r"the value \1 = \2 (Details ▸ Inputs to use)"),
    (r"--value (\w+)", r"the value of \1"),
    (r"raise --tolerance", "raise the tolerance (the wizard's options)"),
    (r"choose --layout", "choose the layout (the wizard's options)"),
    (r"--shape (\w+)", r"the shape of \1"),
    (r"\(--input\)", "(the model's input data)"),
    (r"--input", "input data"),
    (r"--shape", "the input shape"),
    (r"--value", "a fixed value"),
)
_COMPILED = tuple((re.compile(p), r) for p, r in _PHRASES)


@dataclass(frozen=True)
class Fix:
    """A control that fixes what a message asks for: ``action`` is one of ``inputs`` (Details ▸ Inputs to use),
    ``runtime``, ``calibration`` and ``evaluation`` (the Optimize panel's fields); ``label`` is the button's text."""

    action: str
    label: str


_FIXES = (
    (re.compile(r"--shape|dynamic dims|--input\b|--value|unknown rank"), Fix("inputs", "Set the inputs…")),
    (re.compile(r"--runtime"), Fix("runtime", "Choose another runtime")),
    (re.compile(r"--calibration|needs calibration data"), Fix("calibration", "Choose calibration data…")),
    (re.compile(r"--dataset|needs labeled data"), Fix("evaluation", "Choose evaluation data…")),
)


def studio_text(text: str | None) -> str:
    """``text`` (a core message written for the command line) in the studio's words."""
    if not text:
        return ""
    out = str(text)
    if "--" not in out:
        return out
    for pattern, repl in _COMPILED:
        out = pattern.sub(repl, out)
    return out


def fix_for(text: str | None) -> Fix | None:
    """The control that fixes what the (command-line worded) message ``text`` asks for, None when none does."""
    if not text:
        return None
    for pattern, fix in _FIXES:
        if pattern.search(str(text)):
            return fix
    return None


def ended_text(status: str, error: str | None) -> str:
    """How a job ended, in one phrase: ``failed: <cause>``; a cancelled job says so without a cause of "None"."""
    if status == "cancelled":
        cause = studio_text(error).removeprefix("cancelled").strip(" :()") if error else ""
        if "worker stopped" in cause:  # the step in progress did not stop by itself: its process was ended
            cause = "by you; the step in progress was stopped"
        return "cancelled" + (f" ({cause})" if cause else " (by you)")
    return f"{status}: {studio_text(error)}" if error else status


def memory_text(mb: float) -> str:
    """``0.6 MB``, ``12 MB``: a model's own memory is often under one MB."""
    return f"{mb:.1f} MB" if mb < 10 else f"{mb:.0f} MB"


def ended_html(status: str, error: str | None, what: str = "") -> str:
    """:func:`ended_text` for a rich-text status line: ``<b>rescue failed</b>: cause``, ``<b>cancelled</b>``."""
    import html

    said = ended_text(status, error)
    head, _, cause = said.partition(": ") if status != "cancelled" else (said, "", "")
    return f"<b>{html.escape((what + ' ' if what else '') + head)}</b>" + (f": {html.escape(cause)}" if cause else "")
