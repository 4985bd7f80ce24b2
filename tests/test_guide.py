"""The README and the user guide cannot drift: every `edgestudio` command shown in their code blocks runs for real.

Each page's commands run in page order, through bash (as a reader pastes them), in a fresh folder holding a copy of
the sample models at ``resources/samples/`` (the path the pages use), with the user's folders (data, config,
environments, devices, trusted models) moved into it. A block the test machine cannot run (it needs a remote device,
or downloads hundreds of MB) is marked in the page source with ``<!-- not-run: REASON -->`` just before it: its
commands are parsed by the CLI's own parser (the subcommand and every option must exist) but not run. Such blocks are
few and each names its reason and the test that covers that path. ``<!-- file: NAME -->`` before a block writes the
block to NAME in the folder before the commands that follow (a recipe, a sweep file).

The README stays short (under 250 lines), every relative link of the pages resolves, and where mkdocs is installed
(`make docs` installs the `docs` extra) the guide builds with ``mkdocs build --strict``."""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ROOT

README = ROOT / "README.md"
GUIDE = ROOT / "docs" / "guide"
PAGES = [README, *sorted(GUIDE.glob("*.md"))]
MAX_NOT_RUN = 6  # blocks the test only parses: keep them few
ANNOTATION = re.compile(r"^<!--\s*([a-z-]+):\s*(.*?)\s*-->$")
# subcommands with no fenced example, and why
UNSHOWN = {"agent": "a server that runs until stopped; devices.md shows it as `python -m edgestudio.agent`"}


@dataclass
class Block:
    page: Path
    line: int  # 1-based line of the opening fence
    lang: str
    text: str
    annotation: tuple[str, str] | None  # ("not-run", reason) or ("file", name)

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"

    def commands(self) -> list[str]:
        """The block's `edgestudio ...` command lines, backslash continuations joined."""
        out, pending = [], ""
        for raw in self.text.splitlines():
            line = pending + raw.strip()
            if line.endswith("\\"):
                pending = line[:-1] + " "
                continue
            pending = ""
            if line.startswith("edgestudio "):
                out.append(line)
        return out


def blocks(page: Path) -> list[Block]:
    """The fenced code blocks of a Markdown page, each with the annotation on the line before it (if any)."""
    lines = page.read_text(encoding="utf-8").splitlines()
    out: list[Block] = []
    i = 0
    while i < len(lines):
        fence = re.match(r"^(```+|~~~+)\s*([\w+-]*)", lines[i])
        if not fence:
            i += 1
            continue
        prev = next((lines[j].strip() for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        m = ANNOTATION.match(prev)
        end = next((j for j in range(i + 1, len(lines)) if lines[j].startswith(fence.group(1))), None)
        assert end is not None, f"{page.relative_to(ROOT)}:{i + 1}: a code block that never closes"
        out.append(Block(page, i + 1, fence.group(2), "\n".join(lines[i + 1:end]) + "\n",
                         (m.group(1), m.group(2)) if m else None))
        i = end + 1
    return out


ALL = [b for page in PAGES for b in blocks(page)]


# ------------------------------------------------------------------------------------------------- the pages
def test_the_readme_is_short() -> None:
    n = len(README.read_text(encoding="utf-8").splitlines())
    assert n < 250, f"README.md has {n} lines: move the detail into docs/guide/"


def test_the_pages_have_commands_and_the_commands_are_tested() -> None:
    assert len(PAGES) > 10 and all(p.is_file() for p in PAGES)
    run = [c for b in ALL if b.annotation is None for c in b.commands()]
    assert len(run) >= 60, f"only {len(run)} commands are run: the guide should show (and so test) its tasks"
    # every command line starts at a fence's line start: an indented or prompt-prefixed one would escape the test
    for b in ALL:
        for raw in b.text.splitlines():
            assert not re.match(r"^\s*(\$|>|\.venv/bin/)\s*edgestudio ", raw), (
                f"{b.where}: write commands as `edgestudio ...` (no prompt, no .venv/bin/) so the test finds them")


def test_not_run_blocks_are_few_and_each_says_why() -> None:
    marked = [b for b in ALL if b.annotation]
    for b in marked:
        kind, value = b.annotation  # type: ignore[misc]
        assert kind in ("not-run", "file"), f"{b.where}: unknown annotation {kind!r} (not-run: REASON, or file: NAME)"
        if kind == "file":
            assert re.fullmatch(r"[\w.-]+", value), f"{b.where}: file: needs a plain file name, got {value!r}"
    not_run = [b for b in marked if b.annotation and b.annotation[0] == "not-run"]
    assert len(not_run) <= MAX_NOT_RUN, (
        f"{len(not_run)} blocks are not run (at most {MAX_NOT_RUN}): {[b.where for b in not_run]}")
    for b in not_run:
        reason = b.annotation[1]  # type: ignore[index]
        assert len(reason) >= 30, f"{b.where}: say why the block is not run, and which test runs that path"
        covering = re.findall(r"tests/test_\w+\.py", reason)
        assert covering and all((ROOT / t).is_file() for t in covering), (
            f"{b.where}: name the test that runs this path instead (tests/test_....py): {reason!r}")
        assert b.commands(), f"{b.where}: a not-run block with no edgestudio command"


def _parse(command: str) -> None:
    from edgestudio.cli import build_parser

    argv = shlex.split(command, comments=True)[1:]
    try:
        args = build_parser().parse_args(argv)
    except (Exception, SystemExit) as exc:
        raise AssertionError(f"the CLI refuses `{command}`: {exc}") from None
    assert getattr(args, "func", None), f"`{command}` names no subcommand"


@pytest.mark.parametrize("block", [b for b in ALL if b.annotation and b.annotation[0] == "not-run"],
                         ids=lambda b: b.where)
def test_commands_not_run_still_parse(block: Block) -> None:
    """What the test machine cannot run is still checked against the CLI: the subcommand and its options exist."""
    for command in block.commands():
        _parse(command)


def test_every_subcommand_is_shown() -> None:
    from edgestudio.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    shown = {shlex.split(c, comments=True)[1] for b in ALL for c in b.commands()}
    missing = set(sub.choices) - shown - set(UNSHOWN)
    assert not missing, f"subcommands the guide never shows: {sorted(missing)}"


def _links(page: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    return [t for t in re.findall(r"\]\(([^)\s]+)\)", text) if not re.match(r"[a-z]+:", t) and not t.startswith("#")]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page: Path) -> None:
    """Links work on GitHub as they do in the built site (mkdocs checks anchors too, below)."""
    broken = [t for t in _links(page) if not (page.parent / t.split("#")[0]).exists()]
    assert not broken, f"{page.relative_to(ROOT)}: broken links {broken}"


def test_every_guide_page_is_in_the_site_nav() -> None:
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    missing = [p.name for p in GUIDE.glob("*.md") if f"guide/{p.name}" not in nav]
    assert not missing, f"pages not in mkdocs.yml's nav: {missing}"


@pytest.mark.heavy
def test_the_guide_builds_strict(tmp_path: Path) -> None:
    if not (importlib.util.find_spec("mkdocs") and importlib.util.find_spec("material")):
        pytest.skip("mkdocs-material is not installed (`make docs` installs the docs extra)")
    site = tmp_path / "site"
    r = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(ROOT / "mkdocs.yml"),
                        "--site-dir", str(site)], capture_output=True, text=True, timeout=300, cwd=ROOT,
                       env=dict(os.environ, NO_MKDOCS_2_WARNING="1"))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert (site / "index.html").is_file() and (site / "guide" / "index.html").is_file()
    assert (site / "screenshots" / "main-window.png").is_file()
    assert not list(site.rglob("make_screenshots.py")) and not list(site.rglob("mkdocs_hooks.py"))
    # offline: the pages load nothing from outside the site
    external = sorted({m for html in site.rglob("*.html")
                       for m in re.findall(r'(?:src|href)="(https?://[^"]+\.(?:js|css|woff2?))"', html.read_text())})
    assert not external, f"the site fetches from outside itself: {external}"


# ----------------------------------------------------------------------------------------------- the commands
RUNNABLE = [p for p in PAGES if any(b.annotation is None and b.commands() for b in blocks(p))]


def _environment(home: Path) -> dict[str, str]:
    """The reader's shell: `edgestudio` on the PATH (this interpreter's), and the user's folders moved into ``home``."""
    bin_dir = Path(sys.executable).parent
    if not (bin_dir / "edgestudio").is_file():
        bin_dir = home / "bin"
        bin_dir.mkdir(parents=True, exist_ok=True)
        shim = bin_dir / "edgestudio"
        shim.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m edgestudio "$@"\n')
        shim.chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}", PYTHONWARNINGS="ignore",
               XDG_DATA_HOME=str(home / "data"), XDG_CONFIG_HOME=str(home / "config"),
               XDG_STATE_HOME=str(home / "state"), EDGESTUDIO_ENVS=str(home / "envs"),
               EDGESTUDIO_DEVICES=str(home / "devices.json"), EDGESTUDIO_TRUST_FILE=str(home / "trusted-models.txt"))
    env.pop("EDGESTUDIO_WORKSPACE", None)
    return env


# ~50 real CLI processes (TensorFlow conversions, NNCF, browsers): 4-8 minutes on 2 cores, whatever the samples.
# In `make test` (not slow): a guide whose commands are not run in CI can drift. `heavy`: not in `make test-fast`
@pytest.mark.heavy
@pytest.mark.parametrize("page", RUNNABLE, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_commands_run(page: Path, samples: Path, tmp_path: Path) -> None:
    """Every command of the page, in order, in a folder with the samples where the page says they are."""
    work = tmp_path / "work"
    shutil.copytree(samples, work / "resources" / "samples")
    env = _environment(tmp_path / "home")
    ran: list[str] = []
    for block in blocks(page):
        if block.annotation and block.annotation[0] == "file":
            (work / block.annotation[1]).write_text(block.text, encoding="utf-8")
            continue
        if block.annotation:  # not-run: parsed by test_commands_not_run_still_parse
            continue
        for command in block.commands():
            t0 = time.monotonic()
            r = subprocess.run(["bash", "-c", command], cwd=work, env=env, capture_output=True, text=True,
                               timeout=600)
            ran.append(f"{time.monotonic() - t0:6.1f} s  {command}")
            assert r.returncode == 0 and "Traceback" not in r.stderr, (
                f"{block.where}: `{command}` exited {r.returncode}\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}")
    assert ran
    print(f"\n{page.relative_to(ROOT)}:\n" + "\n".join(ran))
