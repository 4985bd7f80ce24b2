"""The text output of the commands (what --json does not print): one function a result, plain text."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgestudio.core.errors import display


def _fmt_shape(shape: list[Any]) -> str:
    from edgestudio.core.inputspec import format_dims

    return format_dims(shape)


def _typed(kind: str, d: dict[str, Any], render: Callable[[Any, Any], str], besides: tuple[str, ...] = ()) -> str:
    """Render ``d`` as its job kind's typed result (:mod:`edgestudio.jobs.results`); a result that does not fit its
    type (an older agent's) is shown as it came, with the reason."""
    from edgestudio.core.jobs import JobKind
    from edgestudio.jobs.results import ResultError, parse_result

    try:
        typed = parse_result(JobKind(kind), d, besides=besides)
    except ResultError as exc:
        return json.dumps(d, indent=1, default=str) + f"\n(not shown as a table: {exc})"
    return render(typed.body, typed.envelope)


def _inspect_text(d: dict[str, Any]) -> str:
    return _typed("inspect", d, lambda info, _: _info_text(info))


def _info_text(info: Any) -> str:
    lines = [f"{info.path}", f"  format      {info.format.value}", f"  size        {info.size_bytes:,} bytes"]
    for key, tensors in (("input", info.inputs), ("output", info.outputs)):
        for t in tensors:
            lines.append(f"  {key:<11} {t.name}  {_fmt_shape(t.shape)}  {t.dtype}")
    if info.parameters is not None:
        lines.append(f"  parameters  {info.parameters:,}")
    if info.macs is not None:
        lines.append(f"  MACs        {info.macs:,}" + (f"  (at {info.macs_at})" if info.macs_at else ""))
    elif info.macs_note:
        lines.append(f"  MACs        {info.macs_note}")
    if info.opset is not None:
        lines.append(f"  opset       {info.opset}")
    if info.producer:
        lines.append(f"  producer    {info.producer}")
    ops = sorted(info.ops.items(), key=lambda kv: -kv[1])
    if ops:
        lines.append("  ops         " + ", ".join(f"{k} x{v}" for k, v in ops[:20]) + (" ..." if len(ops) > 20 else ""))
    return "\n".join(lines)


def _bench_text(d: dict[str, Any]) -> str:
    native = d.get("parity_vs_native")  # the command's own check of a browser's answers
    return _typed("bench", d, lambda r, env: _bench_result_text(r, env) + (
        f"\n  outputs    vs {native['native_runtime']}: {native['summary']}" if native else ""),
        besides=("parity_vs_native",))


def _bench_result_text(r: Any, env: Any) -> str:
    lat, target, machine = r.latency_ms, r.target or {}, r.machine or {}
    return (f"{r.model} on {r.runtime}/{r.device}" + (f" ({r.precision})" if r.precision else "")
            + f"\n  iterations {r.iterations}   load {r.load_ms:.1f} ms   first inference "
            f"{r.first_inference_ms:.2f} ms   peak RSS {r.peak_rss_mb:.0f} MB"
            f"\n  latency ms  mean {lat.mean:.3f}  std {lat.std:.3f}  min {lat.min:.3f}  p50 {lat.p50:.3f}"
            f"  p90 {lat.p90:.3f}  p95 {lat.p95:.3f}  p99 {lat.p99:.3f}  max {lat.max:.3f}"
            + (f"\n  p50 95% CI [{r.ci_ms['p50'][0]:.4f}, {r.ci_ms['p50'][1]:.4f}] ms   warm-up "
               + (f"{r.warmup_runs} runs" if r.warmup_runs is not None else "not reported")
               + (" (steady)" if r.steady else " (not steady at the cap)" if r.steady is False else "")
               + f"   threads {r.threads} ({r.threads_source})"
               + (f"   load {machine['load_average'][0]} on {machine['cpu']}"
                  if machine.get("load_average") else "") if r.ci_ms else "")
            + f"\n  throughput {r.throughput_fps:.1f} inferences/s"
            f"\n  inputs     " + ", ".join(f"{k} {v}" for k, v in (r.input_shapes or {}).items())
            + (f"\n  target     {target.get('browser')}: {target.get('runtime')}, "
               f"{target.get('threads')} threads, crossOriginIsolated {target.get('crossOriginIsolated')}, "
               f"WebGPU adapter {'yes' if target.get('webgpu') else 'no'}"
               if target.get("browser") else "")
            + (_agent_text(env.agent) if env.agent else ""))


def _agent_text(a: dict[str, Any]) -> str:
    on = a.get("executed_on") or {}
    return (f"\n  device     {a['device']} ({a['host']}:{a['port']}): {on.get('cpu', '?')}, {on.get('cores', '?')} "
            f"cores, {on.get('os', '')}; latencies measured on the device (model transfer {a['transfer_s']:.2f} s, "
            "not included)")


def _throughput_text(d: dict[str, Any]) -> str:
    streams, batches = d["streams"], d["batches"]
    cell = {(c["batch"], c["streams"]): c for c in d["cells"]}
    lines = [f"{d['model']} on {d['runtime']}: throughput (samples/s), batch x streams, {d['duration_s']:g} s a cell, "
             f"{d['cores']} cores split across the streams",
             f"  {'batch':>6} " + "".join(f"{f'{s} stream' + ('s' if s > 1 else ''):>28}" for s in streams)]
    for b in batches:
        row = []
        for s in streams:
            c = cell[(b, s)]
            row.append("error" if c["error"] else f"{c['fps']:.0f} fps, p50 {c['p50_ms']:.3f} ms")
        lines.append(f"  {b:>6} " + "".join(f"{x:>28}" for x in row))
    best = d.get("best")
    if best:
        lines.append(f"best: batch {best['batch']}, {best['streams']} stream(s): {best['fps']:.0f} samples/s")
    lines += [f"  batch {c['batch']}, {c['streams']} streams: {c['error']}" for c in d["cells"] if c["error"]]
    return "\n".join(lines)


def _convert_text(d: dict[str, Any]) -> str:
    return _typed("convert", d, lambda r, _: _conversion_text(r))


def _conversion_text(r: Any) -> str:
    lines = [f"{r.output}  ({r.seconds:.1f} s; parity {r.verdict})"]
    for s in r.steps:
        p = s.parity or {}
        check = "parity not checked (the result was run once)" if not p else f"parity {p.get('summary')}"
        lines.append(f"  {s.source:>10} -> {s.target:<10} {s.converter:<12} {s.seconds:6.2f} s   {check}")
        if s.route:
            lines.append(f"  {'':>10}    {s.route}")
        for rt, extra in (p.get("also") or {}).items():
            lines.append(f"  {'':>10}    {'':<10} {'':<12} {'':>8}   also run on {rt}: parity {extra.get('summary')}")
    return "\n".join(lines + [f"warning: {w}" for w in r.warnings])


def _optimize_text(d: dict[str, Any]) -> str:
    if "candidates" in d:
        lines = [f"{'variant':<42}{'p50 ms':>9}{'p99 ms':>9}{'size':>10}{'accuracy':>10}  guard  pareto"]
        for r in d["candidates"]:
            p50 = f"{r['p50_ms']:.3f}" if r.get("p50_ms") is not None else "-"
            p99 = f"{r['p99_ms']:.3f}" if r.get("p99_ms") is not None else "-"
            acc = f"{r['accuracy']:.4f}" if r.get("accuracy") is not None else "-"
            size = f"{r['size_bytes'] / 1024:.0f} KB" if r.get("size_bytes") else "-"
            lines.append(f"{r['label']:<42}{p50:>9}{p99:>9}{size:>10}{acc:>10}  {'ok' if r['passed'] else 'drop':<6} "
                         f"{'*' if r['pareto'] else ''}" + (f"  ({r['error']})" if r.get("error") else ""))
        best = d.get("best")
        lines.append(f"pick: {best['label']} -> {best['path']}" if best else "no candidate passed the accuracy guard")
        if d.get("paired_final"):
            pf = d["paired_final"]
            lines.append(f"picked in a paired final round of the top {sum(1 for r in d['candidates'] if r.get('paired_rank'))}"
                         f" ({pf['blocks']} alternating blocks of {pf['block']}): " + ", ".join(
                             f"{r['label']} x{r.get('threads')} threads {r['paired_p50_ms']:.3f} ms "
                             f"[{r['paired_ci_ms'][0]:.3f}, {r['paired_ci_ms'][1]:.3f}]" + (" tie" if r.get("tied")
                                                                                              else "")
                             for r in sorted((r for r in d["candidates"] if r.get("paired_rank")),
                                             key=lambda r: r["paired_rank"])))
        if d.get("bench_device"):
            lines.append(f"latencies measured on {d['bench_device']} (the variants were made and their accuracy "
                         "checked here)")
        return "\n".join(lines + [f"warning: {w}" for w in d.get("warnings", [])])
    # a method's optimization (convert --int8 adds the conversion before it, shown by its command)
    return _typed("optimize", d, lambda r, _: _optimization_text(r), besides=("conversion",))


def _optimization_text(r: Any) -> str:
    sb = r.size_bytes
    lines = [f"{r.output}", f"  {r.method} for {r.runtime} in {r.seconds:.1f} s; size {sb.before:,} -> "
             f"{sb.after:,} bytes ({sb.after / max(sb.before, 1):.0%})"]
    drift = r.details.get("drift")
    if drift:
        from edgestudio.bench.parity import output_text

        outs = "; ".join(output_text(o) for o in drift["outputs"][:4])
        lines.append(f"  drift vs FP32: {drift['verdict']} on {drift['samples']} {drift['data']}: {outs} "
                     f"(limit cosine {drift['min_cosine']})")
    if r.accuracy:
        a = r.accuracy
        lines.append(f"  top-1 {a['before']:.4f} -> {a['after']:.4f} (drop {a['drop']:.4f}, max {a['max_drop']})")
    if r.details.get("sparsity") is not None:
        det = r.details
        lines.append(f"  sparsity {det['sparsity']:.1%}; zipped {det['compressed_bytes']['before']:,} -> "
                     f"{det['compressed_bytes']['after']:,} bytes")
    return "\n".join(lines + [f"  warning: {w}" for w in r.warnings])


def _compare_text(rows: list[dict[str, Any]]) -> str:
    lines = [f"{'variant':<32}{'runtime':<12}{'device':<18}{'p50 ms':>9}{'paired p50 [95% CI]':>27}{'p99 ms':>9}"
             f"{'fps':>9}{'size':>10}{'top-1':>8}  pareto"]
    for r in rows:
        f = lambda k, fmt: fmt.format(r[k]) if r.get(k) is not None else "-"  # noqa: E731
        paired = (f"{r['paired_p50_ms']:.3f} [{r['paired_ci_ms'][0]:.3f}, {r['paired_ci_ms'][1]:.3f}]"
                  + (" tie" if r.get("tied") else "    ") if r.get("paired_p50_ms") is not None else "-")
        where = str(r.get("device") or "") + (f" x{r['threads']}" if r.get("threads") else "")
        lines.append(f"{Path(r['model']).name[:31]:<32}{r['runtime']:<12}{where[:17]:<18}"
                     f"{f('p50_ms', '{:.3f}'):>9}{paired:>27}"
                     f"{f('p99_ms', '{:.3f}'):>9}{f('throughput_fps', '{:.0f}'):>9}{r['size_bytes'] / 1024:>8.0f}KB"
                     f"{f('accuracy', '{:.4f}'):>8}  {'*' if r['pareto'] else ''}"
                     + (f"  ({r['error']})" if r.get("error") else ""))
        for warning in (r.get("flag"), r.get("noise")):  # a wrong answer or a noisy run is said, never ranked silently
            if warning:
                lines.append(f"  ! {warning}")
    if any(r.get("paired_p50_ms") is not None for r in rows):
        lines.append("ranked by the paired round (variants loaded once, timed in alternating blocks); "
                     "'tie': not slower than the row above in every block, or their intervals overlap: this "
                     "measurement cannot tell the two apart")
    return "\n".join(lines)


def _tflm_text(t: dict[str, Any]) -> str:
    from edgestudio.packaging import tflm

    if not t.get("arena_measured"):
        return f"\n  TFLite Micro: tflm/{t['source']}, arena ESTIMATED at {t['arena_bytes']:,} bytes (TFLM not run)"
    parts, par = t.get("arena_parts") or {}, t.get("parity") or {}
    return (f"\n  TFLite Micro: tflm/{t['source']} + main.cc; arena {t['arena_bytes']:,} bytes measured in TFLM "
            f"(head {parts.get('head', 0):,} + tail {parts.get('tail', 0):,}; 64-bit host), flash {t['flash_bytes']:,} "
            f"bytes; TFLM vs LiteRT (reference kernels) {tflm.parity_words(par)}"
            + (f"; state in {t['resource_variables']} resource variable(s)" if t.get("resource_variables") else ""))


def _debug_text(d: dict[str, Any]) -> str:
    first, big = d.get("first_diverging"), d.get("biggest_contributor")
    head = {"agrees": "every matched layer agrees", "diverges": "the child diverges",
            "outputs agree": "the outputs agree; inside, a layer parts without reaching them",
            "inconclusive": "inconclusive"}.get(d["verdict"], d["verdict"])
    lone = d.get("unmatched") or {"parent": len(d["unmatched_parent"]), "child": len(d["unmatched_child"]),
                                  "refused": 0}
    lines = [f"{d['child']} vs {d['parent']}: {head} ({d['matched']} tensors paired: {d['matched_by_name']} by name, "
             f"{d.get('matched_by_structure', 0)} by graph structure; unmatched: {lone['parent']} of the parent's, "
             f"{lone['child']} of the child's, {lone['refused']} name pairs refused (before vs after an activation); "
             f"{d['samples']} samples)"]
    if d.get("note"):
        lines.append(f"  note: {d['note']}")

    def weighted(p: dict[str, Any]) -> str:
        own = p.get("blame_node") and p["blame_node"] != p["node"]
        return f" [weighted op: {p['blame_node']} ({p['blame_op']})]" if own else ""

    if first:
        lines.append(f"  first diverging layer: {first['node']} ({first['op']}) -> {first['parent']}: cosine "
                     f"{first['cosine']}, SNR {first['snr_db']} dB, max abs diff {first['max_abs_diff']:.4g}"
                     + weighted(first))
    if big:
        lines.append(f"  largest own error: {big['node']} ({big['op']}) -> {big['parent']}: cosine "
                     f"{big['input_cosine']} in -> {big['cosine']} out (drop {big['contribution']:.4g})"
                     + weighted(big) + "; keep it in float: --ignore " + str(big.get("blame_node") or big["node"]))
    lines.append(f"  {'#':>4} {'op':<16}{'tensor':<44}{'matched':<11}{'cosine':>10}{'own drop':>10}{'SNR dB':>9}"
                 f"{'max abs':>11}")
    for p in d["pairs"][:60]:
        snr = "inf" if p["snr_db"] is None else f"{p['snr_db']:.1f}"
        own = "-" if p.get("contribution") is None else f"{p['contribution']:.4f}"
        lines.append(f"  {p['order']:>4} {p['op'][:15]:<16}{p['parent'][-43:]:<44}{p['matched_by']:<11}"
                     f"{p['cosine'] if p['cosine'] is not None else '-':>10}{own:>10}{snr:>9}"
                     f"{p['max_abs_diff']:>11.4g}" + ("  <- diverges" if p["diverges"] else ""))
    outs = d.get("outputs")
    if outs and outs.get("outputs"):  # what the layers explain: the outputs, judged as the drift guard judges them
        from edgestudio.bench.parity import output_text

        lines.insert(1 + bool(d.get("first_diverging")) + bool(d.get("biggest_contributor")),
                     f"  outputs ({outs['verdict']}): " + "; ".join(output_text(o) for o in outs["outputs"][:4]))
    return "\n".join(lines)


def _chain_text(d: dict[str, Any]) -> str:
    n = len(d["hops"])
    lines = [f"the chain, hop by hop ({n} hop{'s' if n != 1 else ''}; verdict for the whole: {d['verdict']})"]
    for s in d["skipped"]:
        lines.append(f"  skipped {s['model']}: {s['reason']}")
    for i, h in enumerate([*d["hops"], d["whole"]] if n > 1 else d["hops"]):
        whole = i == len(d["hops"])
        first = h["first_diverging"]
        cos = "-" if h["output_cosine"] is None else f"{h['output_cosine']:.6f}"
        mark = "  <- the loss enters here" if i == d["loss_enters_at"] else ""
        lines.append(f"  {'whole' if whole else f'hop {i + 1}'}: {Path(h['parent']).name} -> {Path(h['child']).name}: "
                     f"{h['verdict']}, output cosine {cos}"
                     + (f", first diverging {first['node']} ({first['op']})" if first else "") + mark)
    if d.get("note"):
        lines.append(f"  note: {d['note']}")
    return "\n".join(lines)


def _profile_text(d: dict[str, Any]) -> str:
    lines = [f"{d['model']} on {d['runtime']}: {d['total_layer_ms']:.3f} ms in layers (median of {d['runs']} runs)",
             f"  {'op type':<22}{'layers':>7}{'ms':>10}{'share':>8}"]
    lines += [f"  {r['op']:<22}{r['count']:>7}{r['ms']:>10.4f}{r['share']:>8.1%}" for r in d["by_op"][:12]]
    lines.append(f"  {'slowest layers':<40}{'kernel':<26}{'ms':>10}{'share':>8}")
    lines += [f"  {r['node'][-39:]:<40}{str(r['kernel'] or '')[:25]:<26}{r['ms']:>10.4f}{r['share']:>8.1%}"
              for r in d["layers"][:15]]
    return "\n".join(lines)


def _rescue_text(d: dict[str, Any]) -> str:
    guard = (f"top-1 drop <= {d['guard']['max_drop']}" if "max_drop" in d["guard"]
             else f"output cosine >= {d['guard']['min_output_cosine']}")
    lines = [f"{d['parent']}: INT8 ({d['runtime']} {d['method']}) with the fewest layers kept in float, guard: {guard}",
             f"  {'step':>4} {'kept in float':<44}{'p50 ms':>9}{'size KB':>9}{'cosine':>9}{'top-1':>8}  guard"]
    for r in d["steps"]:
        kept = ", ".join("/".join(n.split("/")[-2:]) for n in r["kept_in_float"]) or "-"
        if r.get("error"):
            lines.append(f"  {r['step']:>4} {kept[:43]:<44}  quantizer failed: {r['error']}")
            continue
        cos = f"{r['output_cosine']:.4f}" if r["output_cosine"] is not None else "-"
        top1 = f"{r['top1']:.4f}" if r.get("top1") is not None else "-"
        mark = "  <- best" if r["step"] == d.get("best_step") else ""
        lines.append(f"  {r['step']:>4} {kept[:43]:<44}{r['p50_ms']:>9.3f}{r['size_bytes'] / 1024:>9.0f}{cos:>9}"
                     f"{top1:>8}  {'ok' if r['passed'] else 'fails'}{mark}")
    lines.append(f"stopped: {d.get('stopped') or '-'} ({d.get('seconds', 0):.0f} s)")
    if d["passed"]:
        lines.append(f"result: {d['output']}")
    elif d["output"]:
        lines.append(f"best attempt (guard not met): {d['output']}")
    else:
        lines.append("no attempt improved on plain INT8: nothing written")
    return "\n".join(lines)


def _rescue_failure(d: dict[str, Any]) -> str:
    """One line for stderr when the guard was not met: why the search stopped and where its best attempt is."""
    best = next((r for r in d["steps"] if r["step"] == d.get("best_step")), None)
    text = f"error: rescue: the guard was not met; stopped: {d.get('stopped') or 'unknown'}"
    if d["output"] and best:
        figs = ", ".join(x for x in (f"top-1 {best['top1']:.4f}" if best.get("top1") is not None else "",
                                     f"output cosine {best['output_cosine']:.6f}"
                                     if best.get("output_cosine") is not None else "") if x)
        text += (f"; best attempt (step {best['step']}, {len(best['kept_in_float'])} kept in float: {figs}) "
                 f"written to {display(d['output'])}")
    else:
        text += "; no attempt improved on plain INT8: nothing written"
    return text


def _distill_text(d: dict[str, Any]) -> str:
    lines = [f"{d['output']}: {d['student']}, {d['student_params']:,} parameters ({d['param_ratio']:.0%} of the "
             f"teacher's {d['teacher_params']:,}); {d['epochs']} epochs on {d['inputs']} unlabeled inputs at "
             f"T={d['temperature']:g} in {d['seconds']:.1f} s; distillation loss {d['loss'][0]:.4f} -> {d['loss'][-1]:.4f}"]
    if d.get("student_top1") is not None:
        lines.append(f"  top-1 on the labeled set: teacher {d['teacher_top1']:.4f}, student {d['student_top1']:.4f} "
                     f"({(d['student_top1'] - d['teacher_top1']) * 100:+.2f} points)")
    else:
        lines.append("  accuracy not measured: give --dataset (labeled data) to compare teacher and student")
    return "\n".join(lines)


def _run_text(d: dict[str, Any]) -> str:
    lines = [f"{d['recipe']}: {'all gates passed' if d['passed'] else 'FAILED'} ({d['completed']} of {d['of']} steps)"]
    for r in d["steps"]:
        figure = (f" p50 {r['p50_ms']:.4f} ms" if r.get("p50_ms") is not None else
                  f" top-1 {r['top1']:.4f}" if r.get("top1") is not None else
                  f" -> {Path(r['output']).name}" if r.get("output") else "")
        gates = "; ".join(f"{g['gate']} {g['got']} (want {g['want']}) {'ok' if g['passed'] else 'FAILED'}"
                          for g in r["gates"])
        lines.append(f"  {r['step']:>2}. {r['kind']:<8} {r['id']:<14}{figure}  {r['seconds']:.1f} s"
                     + (f"  [{gates}]" if gates else ""))
    lines.append(f"artifacts in {d['output']}")
    return "\n".join(lines)


def _plan_text(d: dict[str, Any]) -> str:
    lines = [f"{d['recipe']}: the plan (nothing is run)", "reads:"]
    lines += [f"  {r['what']:<18} {r['path']}" for r in d["reads"]]
    lines.append(f"writes under {d['output']}:")
    for st in d["steps"]:
        lines.append(f"  {st['step']:>2}. {st['kind']:<8} {st['id']:<14} {st['runs']} (from {st['from']})"
                     + (f" -> {st['writes']}" if st["writes"] else ""))
    return "\n".join(lines)


def _when(ts: float | None) -> str:
    import time

    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else "-"

