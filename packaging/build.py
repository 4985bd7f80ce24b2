"""Build EdgeStudio as a standalone one-folder bundle (PyInstaller), then a .tar.gz and a .deb from it,
and run the bundle's --self-test in a clean environment. Prints the bundle size and build time.

    python packaging/build.py [--variant full|lite] [--skip-deb]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edgestudio import __version__  # noqa: E402


def folder_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def build_bundle(variant: str) -> Path:
    env = dict(os.environ, EDGESTUDIO_VARIANT=variant, QT_QPA_PLATFORM="offscreen")
    cmd = [sys.executable, "-m", "PyInstaller", "--noconfirm", "--log-level", "WARN", "--distpath", str(ROOT / "dist"),
           "--workpath", str(ROOT / "build" / f"pyinstaller-{variant}"), str(ROOT / "packaging" / "edgestudio.spec")]
    subprocess.run(cmd, check=True, env=env, cwd=ROOT)
    return ROOT / "dist" / ("edgestudio" if variant == "full" else "edgestudio-lite")


def make_tarball(bundle: Path, variant: str) -> Path:
    suffix = "" if variant == "full" else "-lite"
    out = ROOT / "dist" / f"edgestudio-{__version__}-linux-x86_64{suffix}.tar.gz"
    with tarfile.open(out, "w:gz") as tar:
        tar.add(bundle, arcname=f"edgestudio{suffix}")
    return out


def make_deb(bundle: Path, variant: str) -> Path:
    """/opt/edgestudio, a launcher in /usr/bin, a .desktop entry and the icon; built with dpkg-deb."""
    name = "edgestudio" if variant == "full" else "edgestudio-lite"
    root = ROOT / "build" / f"deb-{variant}"
    shutil.rmtree(root, ignore_errors=True)
    shutil.copytree(bundle, root / "opt" / "edgestudio", symlinks=True)
    (root / "usr" / "bin").mkdir(parents=True)
    os.symlink("/opt/edgestudio/edgestudio", root / "usr" / "bin" / "edgestudio")
    apps = root / "usr" / "share" / "applications"
    apps.mkdir(parents=True)
    shutil.copy(ROOT / "packaging" / "linux" / "edgestudio.desktop", apps / "edgestudio.desktop")
    icons = root / "usr" / "share" / "icons" / "hicolor" / "256x256" / "apps"
    icons.mkdir(parents=True)
    shutil.copy(ROOT / "resources" / "icons" / "edgestudio.png", icons / "edgestudio.png")
    (root / "DEBIAN").mkdir()
    size_kb = folder_size(root) // 1024
    (root / "DEBIAN" / "control").write_text(
        f"Package: {name}\nVersion: {__version__}\nSection: science\nPriority: optional\nArchitecture: amd64\n"
        f"Installed-Size: {size_kb}\nMaintainer: EdgeStudio developers <edgestudio@localhost>\n"
        # Qt's xcb platform plugin (Qt >= 6.5) will not start without libxcb-cursor0 on an X desktop
        "Depends: libgl1, libegl1, libxkbcommon0, libxkbcommon-x11-0, libxcb-cursor0, libfontconfig1, libdbus-1-3, "
        # Python environments (PyTorch, TVM, ExecuTorch) are created with the system's Python
        "python3, python3-venv\n"
        # the browser runtimes (ONNX Runtime Web, TF.js) measured in a real Chromium; QtWebEngine is in the bundle
        "Recommends: chromium\n"
        + (f"Conflicts: {'edgestudio-lite' if variant == 'full' else 'edgestudio'}\n")
        + "Description: desktop studio for deploying ML models to edge hardware\n"
          " Inspect, convert, optimize, benchmark and package ONNX, TFLite, Keras, SavedModel and\n"
          " OpenVINO models; a headless CLI over the same core.\n")
    out = ROOT / "dist" / f"{name}_{__version__}_amd64.deb"
    # gzip: xz takes many minutes on a 700 MB bundle; dpkg reads both
    subprocess.run(["dpkg-deb", "-Zgzip", "--build", "--root-owner-group", str(root), str(out)], check=True,
                   stdout=subprocess.DEVNULL)
    return out


def self_test(bundle: Path) -> str:
    """Run the bundle with a clean environment: no venv, no PYTHONPATH, nothing of the build machine's."""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(ROOT / "build" / "selftest-home"), "QT_QPA_PLATFORM": "offscreen",
           "LANG": "C.UTF-8"}
    Path(env["HOME"]).mkdir(parents=True, exist_ok=True)
    r = subprocess.run([str(bundle / "edgestudio"), "--self-test"], capture_output=True, text=True, env=env,
                       cwd="/tmp", timeout=600)
    if r.returncode != 0:
        raise SystemExit(f"self-test failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    return r.stdout.strip().splitlines()[-1]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--variant", choices=["full", "lite"], default="full")
    ap.add_argument("--skip-deb", action="store_true")
    args = ap.parse_args()
    t0 = time.perf_counter()
    bundle = build_bundle(args.variant)
    built = time.perf_counter() - t0
    print(f"bundle {bundle}: {folder_size(bundle) / 2**20:.0f} MB, built in {built:.0f} s", flush=True)
    tarball = make_tarball(bundle, args.variant)
    print(f"tarball {tarball}: {tarball.stat().st_size / 2**20:.0f} MB", flush=True)
    if not args.skip_deb and shutil.which("dpkg-deb"):
        deb = make_deb(bundle, args.variant)
        print(f"deb {deb}: {deb.stat().st_size / 2**20:.0f} MB", flush=True)
    print(f"self-test: {self_test(bundle)}", flush=True)
    print(f"total {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
