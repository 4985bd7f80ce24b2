"""Deployment packages of models with hostile names and hostile files, for real: every generated file parses
(run.py with ``ast``, the TFLite Micro C++ with the system compiler, the web page with an HTML parser), the
runner runs, no name ever becomes code (a marker file the injected code would create never appears), files a
model refers to are copied only when they are regular files inside its folder, and the packaged model takes the
suffix of the format its content has."""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from edgestudio.core.errors import ModelFormatError, display
from edgestudio.core.formats import ModelFormat
from edgestudio.packaging.deploy import build_package
from tests.conftest import SAMPLES, run_cli

ONNX = SAMPLES / "digits_cnn.onnx"
TFLITE = SAMPLES / "digits_cnn.tflite"
MARKER = "PWNED"
#: the reported injection: the suffix (pasted raw into run.py's string literals) closes the literal and calls
INJECTION = 'digits.x"+str(getattr(__import__("os"),"system")("touch PWNED"))+"'
HOSTILE = [
    INJECTION,
    "m.x'+__import__('os').system('touch PWNED')+'",
    'm.x"',  # a quote alone: the old run.py did not parse
    "m.x\\",  # a backslash escaping the closing quote
    "m.x\ny",  # a newline inside a string literal
    "```m.x`<!--[a](b)",  # Markdown: a code fence, a link, a comment
    "m.{model}{0}{}x",  # format fields
    "m.<script>alert(1)<\\script>",
    "m.*x??=??'??(",  # trigraphs (a file name cannot hold "??/" or "*/": their slash)
    os.fsdecode(b"m.\xff\xfe\x01"),  # bytes that are not UTF-8 (surrogate-escaped by Python), a control byte
    "m" * 200 + "." + "x" * 50,  # near the file system's 255 bytes
]


def _unzip(z: Path, to: Path) -> Path:
    with zipfile.ZipFile(z) as zf:
        zf.extractall(to)
    (root,) = [p for p in to.iterdir() if p.is_dir()]
    return root


def _no_marker(*folders: Path) -> None:
    for folder in folders:
        found = [p for p in folder.rglob("*") if p.name.lower() == MARKER.lower()]
        assert not found, f"injected code ran: {found}"


def _hostile_copy(src: Path, folder: Path, name: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    dst = folder / name
    try:
        shutil.copy(src, dst)
    except OSError as exc:  # a file system that refuses the name: nothing to test there
        pytest.skip(f"this file system does not take the name {display(name)!r}: {exc}")
    return dst


# ------------------------------------------------------------------------------------------------ run.py
@pytest.mark.parametrize("name", HOSTILE, ids=lambda n: display(n)[:24])
def test_a_hostile_model_name_never_becomes_code_in_run_py(tmp_path: Path, name: str) -> None:
    """The package of a model with that name: run.py parses, holds neither the name nor its suffix, and runs (in
    a folder of its own, where the injected command would leave its marker) reproducing EdgeStudio's output."""
    model = _hostile_copy(ONNX, tmp_path / "in", name)
    manifest = build_package(model, "onnxruntime", tmp_path / "p.zip", iterations=2)
    _no_marker(tmp_path)
    root = _unzip(tmp_path / "p.zip", tmp_path / "u")
    source = (root / "run.py").read_text()
    ast.parse(source)  # a SyntaxError fails the test
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    r = subprocess.run([sys.executable, str(root / "run.py"), "--output", str(tmp_path / "y.npy")], cwd=cwd,
                       capture_output=True, text=True, timeout=120)
    _no_marker(tmp_path)
    assert not (Path.cwd() / MARKER).exists()
    assert r.returncode == 0, r.stderr[-2000:]
    suffix = Path(name).suffix
    assert name not in source and (len(suffix) < 3 or suffix not in source)
    assert re.fullmatch(r"[A-Za-z0-9._-]+\.onnx", manifest["model"]["file"]), manifest["model"]["file"]
    assert sorted(p.name for p in (root / "model").iterdir()) == [manifest["model"]["file"]]
    printed = json.loads(r.stdout.strip().splitlines()[-1])
    assert printed["model"] == manifest["model"]["file"] and printed["runtime"] == "onnxruntime"
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), np.load(root / "expected_output.npy"), rtol=1e-5,
                               atol=1e-6)
    readme = (root / "report.md").read_text()
    assert "```" not in readme.split("## Lineage")[1]  # the name cannot open a code fence in the report


# --------------------------------------------------------------------------- the format comes from the content
def _ort_model(tmp_path: Path) -> Path:
    import onnxruntime as ort

    out = tmp_path / "made" / "digits.ort"
    out.parent.mkdir(parents=True)
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    so.optimized_model_filepath = str(out)
    so.add_session_config_entry("session.save_model_format", "ORT")
    ort.InferenceSession(str(ONNX), sess_options=so, providers=["CPUExecutionProvider"])
    return out


@pytest.mark.parametrize("name,content,packaged", [
    (".json", "onnx", "json.onnx"), ("m.textproto", "onnx", "m.onnx"), ("m.ort", "onnx", "m.onnx"),
    (".ort", "onnx", "ort.onnx"), ("m.onnx", "ort", "m.ort")])
def test_the_packaged_model_takes_the_suffix_of_its_content(tmp_path: Path, name: str, content: str,
                                                             packaged: str) -> None:
    """An ONNX model named .json, .textproto or .ort (and an ORT model named .onnx) packages like bench runs it:
    from its detected format, with that format's suffix inside the package, and the runner runs it."""
    src = ONNX if content == "onnx" else _ort_model(tmp_path)
    model = _hostile_copy(src, tmp_path / "in", name)
    manifest = build_package(model, "onnxruntime", tmp_path / "p.zip", iterations=2)
    assert manifest["model"]["file"] == packaged and manifest["model"]["format"] == content
    root = _unzip(tmp_path / "p.zip", tmp_path / "u")
    assert (root / "model" / packaged).read_bytes() == src.read_bytes()
    r = subprocess.run([sys.executable, str(root / "run.py"), "--output", str(tmp_path / "y.npy")],
                       capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), np.load(root / "expected_output.npy"), rtol=1e-5,
                               atol=1e-6)


# ------------------------------------------------------------------------------------------- TFLite Micro
STUB_INTERPRETER = """#pragma once
#include <cstddef>
#include <cstdint>
enum TfLiteStatus { kTfLiteOk = 0, kTfLiteError = 1 };
struct TfLiteTensor { void* data; };
namespace tflite {
struct Model {};
inline const Model* GetModel(const void*) { return nullptr; }
class MicroAllocator {
 public:
  static MicroAllocator* Create(uint8_t*, size_t) { return nullptr; }
};
class MicroResourceVariables {
 public:
  static MicroResourceVariables* Create(MicroAllocator*, int) { return nullptr; }
};
class MicroInterpreter {
 public:
  template <typename R> MicroInterpreter(const Model*, R&, uint8_t*, size_t) {}
  template <typename R> MicroInterpreter(const Model*, R&, MicroAllocator*, MicroResourceVariables*) {}
  TfLiteStatus AllocateTensors() { return kTfLiteOk; }
  TfLiteStatus Invoke() { return kTfLiteOk; }
  TfLiteTensor* input(size_t) { return nullptr; }
  TfLiteTensor* output(size_t) { return nullptr; }
};
}  // namespace tflite
"""


def _cxx() -> str:
    cxx = shutil.which("g++") or shutil.which("c++")
    if cxx is None:
        pytest.skip("no C++ compiler on this machine")
    return cxx


def _stubs(folder: Path, main_cc: str) -> Path:
    """Headers standing in for TensorFlow Lite Micro's, with exactly the Add* methods main.cc calls."""
    adds = sorted(set(re.findall(r"resolver\.(Add\w+)\(\);", main_cc)))
    (folder / "tensorflow/lite/micro").mkdir(parents=True)
    (folder / "tensorflow/lite/schema").mkdir(parents=True)
    (folder / "tensorflow/lite/micro/micro_interpreter.h").write_text(STUB_INTERPRETER)
    (folder / "tensorflow/lite/micro/micro_mutable_op_resolver.h").write_text(
        "#pragma once\n#include \"tensorflow/lite/micro/micro_interpreter.h\"\nnamespace tflite {\n"
        "template <unsigned int N> class MicroMutableOpResolver {\n public:\n"
        + "".join(f"  TfLiteStatus {a}() {{ return kTfLiteOk; }}\n" for a in adds) + "};\n}  // namespace tflite\n")
    (folder / "tensorflow/lite/schema/schema_generated.h").write_text("#pragma once\n")
    for header in ("micro_allocator.h", "micro_resource_variable.h"):  # the real ones declare these classes there
        (folder / "tensorflow/lite/micro" / header).write_text(
            "#pragma once\n#include \"tensorflow/lite/micro/micro_interpreter.h\"\n")
    return folder


def _compile_and_run(tflm: Path, tmp_path: Path, header: str) -> tuple[str, str]:
    """Build main.cc (against the stubs) and a program printing the header's constants, both with -std=c++11
    (trigraphs on: a ``??/`` would splice lines); run both in a folder of their own. (main.cc without comments,
    the program's output)"""
    cxx = _cxx()
    main_cc = (tflm / "main.cc").read_text()
    stubs = _stubs(tmp_path / "stubs", main_cc)
    (data_cc,) = [p for p in tflm.glob("*_model_data.cc")]
    ident = data_cc.name.removesuffix("_model_data.cc")
    prefix = "k" + ident[:1].upper() + ident[1:]
    check = tmp_path / "check.cc"
    check.write_text(f'#include <cstdio>\n#include "{header}"\nint main() {{\n'
                     f'  for (const char* c = {prefix}SourceName; *c; ++c) std::printf("%02x", (unsigned char)*c);\n'
                     f'  std::printf(" %u %d\\n", {ident}_model_data_len, {prefix}ArenaSize);\n}}\n')
    cwd = tmp_path / "run"
    cwd.mkdir()
    flags = ["-std=c++11", "-Wall", "-Wextra", "-Werror", "-I", str(stubs), "-I", str(tflm)]
    for src, exe in ((tflm / "main.cc", cwd / "main"), (check, cwd / "check")):
        r = subprocess.run([cxx, *flags, str(src), str(data_cc), "-o", str(exe)], capture_output=True, text=True,
                           timeout=300)
        assert r.returncode == 0, r.stderr[-3000:]
    assert subprocess.run([str(cwd / "main")], cwd=cwd, timeout=60).returncode == 0
    printed = subprocess.run([str(cwd / "check")], cwd=cwd, capture_output=True, text=True, timeout=60,
                             check=True).stdout
    code = subprocess.run([cxx, "-std=c++11", "-fpreprocessed", "-dD", "-E", "-P", str(tflm / "main.cc")],
                          capture_output=True, text=True, timeout=60, check=True).stdout
    _no_marker(tmp_path)
    return code, printed


def test_tflm_sources_of_a_hostile_name_compile_and_hold_the_name(tmp_path: Path) -> None:
    """build_package --tflm of a .tflite named with quotes, trigraphs, backslashes, a newline and undecodable
    bytes: the C++ compiles (C++11: trigraphs on), identifiers and file names are plain, and the model's file name
    comes back byte for byte from its C string literal."""
    name = os.fsdecode(b'd"\\??= ??\'*x\n\xff.tfl{0}ite\\')
    model = _hostile_copy(TFLITE, tmp_path / "in", name)
    manifest = build_package(model, "litert", tmp_path / "m.zip", tflm=True, iterations=2)
    root = _unzip(tmp_path / "m.zip", tmp_path / "u")
    tflm = root / "tflm"
    assert all(re.fullmatch(r"[A-Za-z0-9_.]+", p.name) for p in tflm.iterdir())
    header = manifest["tflm"]["header"]
    assert re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*_model_data\.h", header)
    _, printed = _compile_and_run(tflm, tmp_path, header)
    hexname, length, arena = printed.split()
    assert bytes.fromhex(hexname) == os.fsencode(name)
    assert int(length) == TFLITE.stat().st_size and int(arena) == manifest["tflm"]["arena_bytes"]


def _with_custom_op(tmp_path: Path, custom: bytes) -> Path:
    """The digits model with its SOFTMAX turned into a custom operator named ``custom`` (what a model file says)."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    m = schema.ModelT.InitFromPackedBuf(bytearray(TFLITE.read_bytes()), 0)
    for oc in m.operatorCodes:
        if max(oc.builtinCode, oc.deprecatedBuiltinCode) == schema.BuiltinOperator.SOFTMAX:
            oc.builtinCode = oc.deprecatedBuiltinCode = schema.BuiltinOperator.CUSTOM
            oc.customCode = custom
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    out = tmp_path / "custom.tflite"
    out.write_bytes(b.Output())
    return out


@pytest.mark.parametrize("custom", [b'X();system("touch PWNED");//', b'Relu();}\nint x = (system("touch PWNED"), 0);'
                                    b'\n/*', b"A */ ??/\n\xff\\"])
def test_a_custom_op_name_from_the_model_is_never_code_in_main_cc(tmp_path: Path, custom: bytes) -> None:
    """The operator names come from the model file: a custom one is written as an escaped string in a comment,
    never as code. main.cc builds and runs (against stand-in TFLM headers), and without its comments it holds
    no trace of the name."""
    from edgestudio.packaging.tflm_sources import export_c_array

    model = _with_custom_op(tmp_path, custom)
    result = export_c_array(model, tmp_path / "tflm", None)
    assert len(result["ops"]) == 8
    code, _ = _compile_and_run(tmp_path / "tflm", tmp_path, result["header"])
    assert "system" not in code and MARKER not in code and "touch" not in code.lower()
    assert code.count("resolver.Add") == 7  # the builtin ones, and nothing else


# ------------------------------------------------------------------------------------------- web package
class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.scripts: list[str] = []
        self.text: dict[str, str] = {}
        self._open: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self._open = tag

    def handle_endtag(self, tag: str) -> None:
        self._open = None

    def handle_data(self, data: str) -> None:
        if self._open == "script":
            self.scripts.append(data)
        elif self._open:
            self.text[self._open] = self.text.get(self._open, "") + data


def _js_const(script: str, name: str) -> object:
    m = re.search(rf"^const {name} = (.*?);(?:\s*//.*)?$", script, re.M)
    assert m, f"no const {name}"
    return json.loads(m.group(1))


def test_the_web_page_holds_names_only_escaped() -> None:
    """Names a file system cannot hold (``</script>``, ``<!--``) given to the page generator: HTML-escaped text
    in the title, JSON (``<``, ``>``, ``&`` escaped) in the script, which stays one script."""
    from edgestudio.packaging.web import index_html

    evil = "</script><script>window.PWNED=1</script><!--\u2028&amp;"
    for runtime in ("ort-web", "tfjs"):
        page = index_html(runtime, evil, evil + ".onnx", [evil + "/w.data"])
        parser = _Page()
        parser.feed(page)
        assert "</script><script>" not in page and "<!--\u2028" not in page
        assert parser.text["title"] == display(evil) and parser.text["h3"] == f"{display(evil)} in the browser"
        module = [s for s in parser.scripts if "async function main" in s]
        assert len(module) == 1 and parser.tags.count("script") == (1 if runtime == "ort-web" else 4)
        if runtime == "ort-web":
            assert _js_const(module[0], "MODEL") == evil + ".onnx"
            assert _js_const(module[0], "EXTERNAL") == [evil + "/w.data"]


@pytest.mark.heavy
def test_a_web_package_of_a_hostile_name_runs_in_the_browser(tmp_path: Path) -> None:
    """package --runtime ort-web of a model whose name closes a JS string and opens a tag: the page (checked in
    the browser while packaging) runs, its model name is a sanitized file name in a JSON literal, and the
    user's name appears only HTML-escaped."""
    from edgestudio.backends.browser import available_browsers
    from edgestudio.packaging.web import build_web_package

    if not available_browsers():
        pytest.skip("no browser on this machine")
    name = 'w.x";window.PWNED=1;"<b onmouseover=alert(1)>'
    model = _hostile_copy(ONNX, tmp_path / "in", name)
    manifest = build_web_package(model, tmp_path / "w.zip", iterations=3)
    assert manifest["page_check"]["max_abs_diff_vs_native"] < 1e-4
    root = _unzip(tmp_path / "w.zip", tmp_path / "u")
    page = (root / "index.html").read_text()
    parser = _Page()
    parser.feed(page)
    assert name not in page and "<b" not in parser.tags and parser.text["title"] == name
    (module,) = [s for s in parser.scripts if "async function main" in s]
    assert _js_const(module, "MODEL") == manifest["model"] and (root / "model" / manifest["model"]).is_file()
    assert re.fullmatch(r"[A-Za-z0-9._-]+\.onnx", manifest["model"])


# ----------------------------------------------------------------------------- files the model refers to
def test_an_ir_whose_bin_is_a_link_is_not_packaged(tmp_path: Path, sample_ir: Path) -> None:
    """An OpenVINO IR whose .bin is a link (to /etc/passwd, or to a copy of the real weights outside the folder,
    or inside it) or a FIFO: refused with one line naming the file and the cause; no package written."""
    d = tmp_path / "ir"
    d.mkdir()
    shutil.copy(sample_ir, d / "m.xml")
    outside = tmp_path / "weights.bin"
    shutil.copy(sample_ir.with_suffix(".bin"), outside)
    shutil.copy(sample_ir.with_suffix(".bin"), d / "real.bin")
    for target in ("/etc/passwd", str(outside), "real.bin"):
        (d / "m.bin").unlink(missing_ok=True)
        (d / "m.bin").symlink_to(target)
        with pytest.raises(ModelFormatError, match=r"m\.bin (is a link|leaves the model's folder)") as err:
            build_package(d / "m.xml", "openvino", tmp_path / "p.zip", iterations=2)
        assert "\n" not in str(err.value) and str(d / "m.xml") in str(err.value)
        assert not (tmp_path / "p.zip").exists()
    (d / "m.bin").unlink()
    os.mkfifo(d / "m.bin")
    with pytest.raises(ModelFormatError, match=r"m\.bin"):
        build_package(d / "m.xml", "openvino", tmp_path / "p.zip", iterations=2)
    (d / "m.bin").unlink()
    (d / "m.bin").symlink_to("/etc/passwd")
    r = run_cli("package", str(d / "m.xml"), "--runtime", "openvino", "-o", str(tmp_path / "p.zip"))
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert "m.bin" in r.stderr and not (tmp_path / "p.zip").exists()


def _external_data_model(folder: Path, location: str = "w.data") -> Path:
    import onnx

    folder.mkdir(parents=True, exist_ok=True)
    m = onnx.load(str(ONNX))
    onnx.save_model(m, str(folder / "e.onnx"), save_as_external_data=True, all_tensors_to_one_file=True,
                    location=location, size_threshold=256)  # the weights (not the small shape tensors ORT infers with)
    return folder / "e.onnx"


def test_onnx_external_data_is_copied_only_from_regular_files_inside_the_folder(tmp_path: Path) -> None:
    """An ONNX model's external data file is packaged with it (the packaged copy runs in ONNX Runtime), and
    refused when it is a link, a FIFO, or a location outside the model's folder (``../``, absolute)."""
    import onnx
    import onnxruntime as ort

    from edgestudio.packaging.deploy import copy_package_files, package_files

    model = _external_data_model(tmp_path / "ok")
    files = package_files(model, ModelFormat.ONNX)
    assert [(p.name, rel) for p, rel in files] == [("e.onnx", ""), ("w.data", "w.data")]
    into = tmp_path / "pkg" / "model"
    into.mkdir(parents=True)
    staged = copy_package_files(model, ModelFormat.ONNX, files, into, "hostile_name")
    assert sorted(p.name for p in into.iterdir()) == ["hostile_name.onnx", "w.data"]
    x = np.load(SAMPLES / "digits_test.npz")["x"][:1].astype(np.float32)
    got = ort.InferenceSession(str(staged), providers=["CPUExecutionProvider"]).run(None, {"image": x})[0]
    want = ort.InferenceSession(str(ONNX), providers=["CPUExecutionProvider"]).run(None, {"image": x})[0]
    np.testing.assert_allclose(got, want, rtol=1e-6)

    secret = tmp_path / "secret.data"
    shutil.copy(model.with_name("w.data"), secret)
    (model.with_name("w.data")).unlink()
    (model.with_name("w.data")).symlink_to(secret)
    for fn in (lambda: package_files(model, ModelFormat.ONNX),
               lambda: build_package(model, "onnxruntime", tmp_path / "p.zip", iterations=2)):
        with pytest.raises(ModelFormatError, match=r"external data file w\.data (is a link|leaves the model's)"):
            fn()
    (model.with_name("w.data")).unlink()
    os.mkfifo(model.with_name("w.data"))
    with pytest.raises(ModelFormatError, match=r"w\.data is not a regular file"):
        package_files(model, ModelFormat.ONNX)
    assert not (tmp_path / "p.zip").exists()
    for location in ("../secret.data", str(secret)):
        m = onnx.load(str(model), load_external_data=False)
        for t in m.graph.initializer:
            for e in t.external_data:  # every tensor that has its data outside
                if e.key == "location":
                    e.value = location
        bad = tmp_path / "bad" / "b.onnx"
        bad.parent.mkdir(exist_ok=True)
        bad.write_bytes(m.SerializeToString())
        with pytest.raises(ModelFormatError, match="leaves the model's folder|not a path inside"):
            package_files(bad, ModelFormat.ONNX)


def test_folder_models_refuse_links_inside(tmp_path: Path) -> None:
    """A SavedModel's files and a TF.js model's shards: every one a regular file inside the folder, else refused
    naming it (a link to a file of the same folder too, a linked folder, a shard path leaving the folder)."""
    from edgestudio.packaging.deploy import package_files

    sm = tmp_path / "sm"
    shutil.copytree(SAMPLES / "digits_cnn_savedmodel", sm)
    files = package_files(sm, ModelFormat.SAVED_MODEL)
    assert sorted(rel for _, rel in files) == sorted(p.relative_to(sm).as_posix() for p in sm.rglob("*")
                                                     if p.is_file())
    (sm / "assets").mkdir(exist_ok=True)
    (sm / "assets" / "copy.pb").symlink_to(sm / "saved_model.pb")
    with pytest.raises(ModelFormatError, match=r"assets/copy\.pb is a link"):
        package_files(sm, ModelFormat.SAVED_MODEL)
    (sm / "assets" / "copy.pb").unlink()
    (sm / "linked").symlink_to(sm / "variables", target_is_directory=True)
    with pytest.raises(ModelFormatError, match="folder linked is a link"):
        package_files(sm, ModelFormat.SAVED_MODEL)

    web = tmp_path / "web"
    web.mkdir()
    (tmp_path / "secret.bin").write_bytes(b"\0" * 16)
    shard = {"paths": ["group1-shard1of1.bin"], "weights": []}
    (web / "model.json").write_text(json.dumps({"modelTopology": {}, "weightsManifest": [shard]}))
    (web / "group1-shard1of1.bin").write_bytes(b"\0" * 16)
    assert [rel for _, rel in package_files(web, ModelFormat.TFJS)] == ["model.json", "group1-shard1of1.bin"]
    (web / "group1-shard1of1.bin").unlink()
    (web / "group1-shard1of1.bin").symlink_to(tmp_path / "secret.bin")
    with pytest.raises(ModelFormatError, match=r"group1-shard1of1\.bin (is a link|leaves the model's folder)"):
        package_files(web, ModelFormat.TFJS)
    shard["paths"] = ["../secret.bin"]
    (web / "model.json").write_text(json.dumps({"modelTopology": {}, "weightsManifest": [shard]}))
    with pytest.raises(ModelFormatError, match=r"\.\./secret\.bin leaves the model's folder"):
        package_files(web, ModelFormat.TFJS)


def test_errors_about_the_packaged_copy_name_the_users_model(tmp_path: Path) -> None:
    """The checks run on the package's own copy of the model; what they say names the user's file."""
    import onnx

    m = onnx.load(str(ONNX))
    m.graph.node[0].op_type = ""  # detected as ONNX, refused by the inspection (on the copy)
    model = tmp_path / "in" / "m.json"
    model.parent.mkdir()
    model.write_bytes(m.SerializeToString())
    with pytest.raises(ModelFormatError, match="empty op type") as err:
        build_package(model, "onnxruntime", tmp_path / "p.zip", iterations=2)
    assert str(err.value).startswith(f"{model}: ") and "edgestudio-pkg-" not in str(err.value)
    assert not (tmp_path / "p.zip").exists()
