"""TensorFlow graphs (SavedModel, TF.js graph models) that hold file-system or Python ops (``ReadFile``,
``WriteFile``, ``PyFunc``, ...), read from the protobuf wire format / JSON without TensorFlow. A model that holds
one runs only when the user trusts it (:func:`edgestudio.core.safety.check_graph_ops`)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from edgestudio.core.errors import ModelFormatError, UntrustedModelError
from edgestudio.core.safety import read_regular

#: ops that reach the file system, run Python, or open readers of paths the graph names; a model that holds
#: one runs only when the user trusts it
DANGEROUS_TF_OPS = frozenset({
    "ReadFile", "WriteFile", "MatchingFiles", "PyFunc", "PyFuncStateless", "EagerPyFunc", "ImmutableConst",
    "WholeFileReader", "WholeFileReaderV2", "TextLineReader", "TextLineReaderV2", "FixedLengthRecordReader",
    "FixedLengthRecordReaderV2", "TFRecordReader", "TFRecordReaderV2", "LMDBReader", "IdentityReader",
    "IdentityReaderV2", "TFRecordDataset", "TFRecordDatasetV2", "TextLineDataset", "FixedLengthRecordDataset",
    "FixedLengthRecordDatasetV2", "LMDBDataset", "CSVDataset", "CSVDatasetV2", "SqlDataset", "SnapshotDataset",
    "SnapshotDatasetV2", "SaveDataset", "SaveDatasetV2", "LoadDataset", "DatasetToTFRecord", "MatchingFilesDataset",
    "CreateSummaryFileWriter", "CreateSummaryDbWriter", "WriteSummary", "WriteScalarSummary", "WriteAudioSummary",
    "WriteImageSummary", "WriteHistogramSummary", "WriteGraphSummary", "WriteRawProtoSummary", "ImportEvent",
    "FlushSummaryWriter", "InitializeTableFromTextFile", "InitializeTableFromTextFileV2", "LoadAndRemapMatrix",
    "DebugIdentity", "DebugIdentityV2", "DebugIdentityV3", "DebugNanCount", "DebugNumericSummary",
    "DebugNumericSummaryV2", "DebugGradientIdentity", "Copy", "CopyHost",
    "CacheDataset", "CacheDatasetV2", "ExperimentalCSVDataset", "ExperimentalLMDBDataset", "ExperimentalSqlDataset",
    "ExperimentalMatchingFilesDataset", "ExperimentalSaveDataset", "DistributedSave", "SnapshotDatasetReader",
    "SnapshotNestedDatasetReader", "SnapshotChunkDataset", "ListSnapshotChunksDataset", "FileSystemSetConfiguration",
    "DecodeProtoV2", "EncodeProto", "GenerateVocabRemapping", "DataServiceDataset", "DataServiceDatasetV2",
    "DataServiceDatasetV3", "DataServiceDatasetV4", "RegisterDataset", "RegisterDatasetV2", "Rpc", "TryRpc",
    "RpcClient", "RpcCall", "RpcCheckStatus", "RpcServer", "RpcServerStart", "RpcServerRegister",
})
#: checkpoint writers: every SavedModel's own save functions hold them; anywhere else they write where the
#: graph says
_SAVER_OPS = frozenset({"SaveV2", "Save", "SaveSlices", "MergeV2Checkpoints", "RestoreV2", "Restore", "RestoreSlice"})


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if i >= len(buf) or shift > 63:
            raise ValueError("truncated varint")
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, i
        shift += 7


def _fields(buf: bytes) -> Iterator[tuple[int, int, bytes | int]]:
    """(field, wire type, value) of one protobuf message; length-delimited values as bytes."""
    i, n = 0, len(buf)
    while i < n:
        tag, i = _varint(buf, i)
        field, wire = tag >> 3, tag & 7
        if wire == 0:
            value, i = _varint(buf, i)
            yield field, wire, value
        elif wire == 2:
            length, i = _varint(buf, i)
            if i + length > n:
                raise ValueError("truncated field")
            yield field, wire, buf[i:i + length]
            i += length
        elif wire == 1:
            i += 8
        elif wire == 5:
            i += 4
        else:
            raise ValueError(f"wire type {wire}")


def _node_ops(node: bytes) -> tuple[str, str, bytes]:
    name = op = ""
    for f, w, v in _fields(node):
        if w == 2 and f == 1:
            name = bytes(v).decode("utf-8", "replace")  # type: ignore[arg-type]
        elif w == 2 and f == 2:
            op = bytes(v).decode("utf-8", "replace")  # type: ignore[arg-type]
    return name, op, node


def _graph_nodes(graph: bytes) -> Iterator[tuple[str, str, str, bytes]]:
    """(function, node name, op, node bytes) of a GraphDef and of every function in its library."""
    for f, w, v in _fields(graph):
        if w != 2:
            continue
        if f == 1:  # GraphDef.node
            yield ("", *_node_ops(v))  # type: ignore[arg-type]
        elif f == 2:  # GraphDef.library
            for lf, lw, fn in _fields(v):  # type: ignore[arg-type]
                if lf != 1 or lw != 2:
                    continue
                fname = ""
                nodes = []
                for ff, fw, fv in _fields(fn):  # type: ignore[arg-type]
                    if ff == 1 and fw == 2:  # FunctionDef.signature (OpDef): its name is field 1
                        for sf, sw, sv in _fields(fv):  # type: ignore[arg-type]
                            if sf == 1 and sw == 2:
                                fname = bytes(sv).decode("utf-8", "replace")  # type: ignore[arg-type]
                    elif ff == 3 and fw == 2:  # FunctionDef.node_def
                        nodes.append(_node_ops(fv))  # type: ignore[arg-type]
                for n in nodes:
                    yield (fname, *n)


def _verdicts(nodes: Iterable[tuple[str, str, str, bytes]], saver_ok: Callable[[str, str], bool] | None = None
              ) -> list[str]:
    """The dangerous ops among ``nodes``; checkpoint ops pass only where ``saver_ok(function, node)`` says they
    belong to the model's own saver (never, without it)."""
    bad: list[str] = []
    for fname, name, op, raw in nodes:
        where = f"{name}{' in ' + fname if fname else ''}"
        if op in DANGEROUS_TF_OPS:
            bad.append(f"{op} ({where})")
        elif op == "PrintV2" and b"file://" in raw:
            bad.append(f"PrintV2 to a file ({where})")
        elif op in _SAVER_OPS and not (saver_ok is not None and saver_ok(fname, name)):
            bad.append(f"{op} ({where})")
    return bad


_TOKEN = re.compile(rb"[A-Za-z0-9_.\-/]{3,}")


def _node_inputs(raw: bytes) -> list[str]:
    return [bytes(v).decode("utf-8", "replace").lstrip("^").split(":")[0]  # type: ignore[arg-type]
            for f, w, v in _fields(raw) if f == 3 and w == 2]


def _saver_scope(nodes: list[tuple[str, str, str, bytes]], roots: set[str],
                 served: set[str] | None = None) -> Callable[[str, str], bool]:
    """Where checkpoint ops belong to the model's saver: top-level nodes that feed the saver's own nodes (the
    SaverDef names them), and functions only the saver calls. A checkpoint op anywhere the model's signatures
    reach (or in a function nothing reaches) writes where the graph says, and is flagged."""
    functions = {f for f, *_ in nodes if f}
    calls: dict[str, set[str]] = {}  # caller (node "name" at top level, or a function) -> functions it calls
    top: dict[str, bytes] = {}
    for fname, name, _op, raw in nodes:
        called = {t.decode() for t in _TOKEN.findall(raw)} & functions
        key = fname or f"node:{name}"
        calls.setdefault(key, set()).update(called - {fname})
        if not fname:
            top[name] = raw

    def reach(starts: Iterable[str]) -> set[str]:
        seen: set[str] = set()
        todo = list(starts)
        while todo:
            k = todo.pop()
            for f in calls.get(k, ()):
                if f not in seen:
                    seen.add(f)
                    todo.append(f)
        return seen

    def ancestors(starts: Iterable[str]) -> set[str]:
        seen: set[str] = set()
        todo = [r for r in starts if r in top]
        while todo:
            n = todo.pop()
            if n not in seen:
                seen.add(n)
                todo += [i for i in _node_inputs(top[n]) if i in top]
        return seen

    saver_nodes = ancestors(roots)
    # what the signatures compute is the model's, whatever the SaverDef claims (a forged one may name the
    # serving node as the saver's)
    model_nodes = ancestors(served or ()) | (set(top) - saver_nodes)
    saver_fns = reach(f"node:{n}" for n in saver_nodes)
    model_fns = reach(f"node:{n}" for n in model_nodes)

    def ok(fname: str, name: str) -> bool:
        if not fname:
            return name in saver_nodes and name not in model_nodes
        return fname in saver_fns and fname not in model_fns

    return ok


def _saver_roots(meta: bytes) -> set[str]:
    """The node names a MetaGraphDef's SaverDef (field 3) names: its save tensor and its restore op."""
    roots: set[str] = set()
    for f, w, v in _fields(meta):
        if f == 3 and w == 2:
            for sf, sw, sv in _fields(v):  # type: ignore[arg-type]
                if sf in (1, 2, 3) and sw == 2:
                    roots.add(bytes(sv).decode("utf-8", "replace").lstrip("^").split(":")[0])  # type: ignore[arg-type]
    return roots


def _served_nodes(meta: bytes) -> set[str]:
    """The nodes a MetaGraphDef's signatures (field 5: name -> SignatureDef) read their inputs from and their
    outputs of: TensorInfo names in SignatureDef.inputs (1) and .outputs (2)."""
    out: set[str] = set()
    for f, w, entry in _fields(meta):
        if f != 5 or w != 2:
            continue
        for ef, ew, sig in _fields(entry):  # type: ignore[arg-type]
            if ef != 2 or ew != 2:
                continue
            for sf, sw, tmap in _fields(sig):  # type: ignore[arg-type]
                if sf in (1, 2) and sw == 2:
                    for mf, mw, info in _fields(tmap):  # type: ignore[arg-type]
                        if mf == 2 and mw == 2:
                            for tf_, tw, tv in _fields(info):  # type: ignore[arg-type]
                                if tf_ == 1 and tw == 2:
                                    out.add(bytes(tv).decode("utf-8", "replace").split(":")[0])  # type: ignore[arg-type]
    return out


def _saved_model_bytes(folder: Path) -> bytes | None:
    pb = folder / "saved_model.pb"
    if pb.is_file():
        return pb.read_bytes()
    text = folder / "saved_model.pbtxt"
    if not text.is_file():
        return None
    try:  # a text SavedModel (rare): TensorFlow's own protos parse it, then the same walk as the binary one
        from google.protobuf import text_format
        from tensorflow.core.protobuf import saved_model_pb2
    except ImportError:
        raise UntrustedModelError(folder, "a text SavedModel (saved_model.pbtxt) cannot be checked without "
                                          "TensorFlow", hint="--trust-model runs it unchecked") from None
    try:
        proto = text_format.Parse(read_regular(text, "SavedModel graph", 256 << 20).decode("utf-8", "replace"),
                                  saved_model_pb2.SavedModel())
    except text_format.ParseError as exc:
        raise ModelFormatError(folder, f"corrupt saved_model.pbtxt ({' '.join(str(exc).split())[:160]})") from None
    return bytes(proto.SerializeToString())


def saved_model_dangerous_ops(folder: Path) -> list[str]:
    """File-system, network and Python ops of a SavedModel's graphs (checkpoint ops of its own saver aside)."""
    data = _saved_model_bytes(folder)
    if data is None:
        return []
    out: list[str] = []
    try:
        for f, w, meta in _fields(data):
            if f == 2 and w == 2:  # SavedModel.meta_graphs
                for mf, mw, graph in _fields(meta):  # type: ignore[arg-type]
                    if mf == 2 and mw == 2:  # MetaGraphDef.graph_def
                        nodes = list(_graph_nodes(graph))  # type: ignore[arg-type]
                        scope = _saver_scope(nodes, _saver_roots(meta), _served_nodes(meta))  # type: ignore[arg-type]
                        out += _verdicts(nodes, scope)
    except ValueError as exc:
        raise ModelFormatError(folder, f"corrupt saved_model.pb ({exc})") from None
    return out


def tfjs_dangerous_ops(doc: dict) -> list[str]:  # type: ignore[type-arg]
    topo = doc.get("modelTopology") if isinstance(doc, dict) else None
    if not isinstance(topo, dict):
        return []
    nodes: list[tuple[str, str, str, bytes]] = []

    def add(fname: str, items: object) -> None:
        for n in items if isinstance(items, list) else []:
            if isinstance(n, dict):
                attrs = str(n.get("attr", ""))
                nodes.append((fname, str(n.get("name", "")), str(n.get("op", "")), attrs.encode()))

    add("", topo.get("node"))
    lib = topo.get("library")
    for fn in (lib.get("function") if isinstance(lib, dict) else None) or []:
        if isinstance(fn, dict):
            sig = fn.get("signature")
            add(str(sig.get("name", "")) if isinstance(sig, dict) else "", fn.get("nodeDef"))
    return _verdicts(nodes)  # a TF.js graph has no saver: a checkpoint op there is the graph's own
