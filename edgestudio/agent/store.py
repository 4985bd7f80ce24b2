"""The agent's uploads: content-addressed folders ``models/SHA256/`` unpacked from a zip, bounded three ways.

- packed: an upload's bytes (``max_upload_bytes``, checked before they travel and when they arrive);
- unpacked: what its zip declares and what it really inflates to (``max_unpacked_bytes``; no member inflating
  more than :data:`~edgestudio.agent.unzip.MAX_RATIO` times), counted while inflating since headers lie;
- the folder: a quota on all uploads together (``quota_bytes``); an upload that would go over it is refused.

References ``cas:SHA256/NAME`` resolve to paths inside a complete upload, and nothing else does.
"""

from __future__ import annotations

import io
import os
import shutil
import threading
import time
import zipfile
from pathlib import Path

from edgestudio.agent.checks import SHA_RE, RequestError
from edgestudio.agent.unzip import ZipLimitError, check_declared, copy_member, open_zip

COMPLETE = ".complete"


class UploadRefused(ValueError):
    """An upload refused (over a limit, the quota, not a safe zip): one line naming the cause."""


class UploadStore:
    def __init__(self, models: Path, *, max_upload_bytes: int, max_unpacked_bytes: int, quota_bytes: int) -> None:
        self.models = models
        self.models.mkdir(parents=True, exist_ok=True)
        self.max_upload_bytes = max_upload_bytes
        self.max_unpacked_bytes = max_unpacked_bytes
        self.quota_bytes = quota_bytes
        self._lock = threading.Lock()
        self._reserved = 0  # bytes promised to uploads being unpacked now
        for stale in self.models.glob(".*"):  # unpacked by an agent that was killed mid-upload
            shutil.rmtree(stale, ignore_errors=True)

    # ------------------------------------------------------------------------------------------- state
    def has(self, sha: str) -> bool:
        return bool(SHA_RE.fullmatch(sha)) and (self.models / sha / COMPLETE).is_file()

    def used_bytes(self) -> int:
        """Bytes of every file in the models folder (uploads, and what is being unpacked)."""
        total = 0
        for root, _dirs, files in os.walk(self.models):
            for name in files:
                try:
                    total += os.lstat(os.path.join(root, name)).st_size
                except OSError:
                    continue
        return total

    # ------------------------------------------------------------------------------------------ limits
    def check_announced(self, size: int) -> None:
        """Before the bytes travel: over the upload limit, or more than the quota has room for."""
        if size > self.max_upload_bytes:
            raise UploadRefused(f"the upload ({size:,} bytes) is over this agent's limit of "
                                f"{self.max_upload_bytes:,} bytes")
        with self._lock:
            room = self.quota_bytes - self.used_bytes() - self._reserved
        if size > room:
            raise UploadRefused(self._full(size, room))

    def _full(self, size: int, room: int) -> str:
        return (f"the agent's models folder is full: the upload needs {size:,} bytes, {max(room, 0):,} of its "
                f"quota of {self.quota_bytes:,} are left (remove old uploads there, or raise --models-quota-mb)")

    def _reserve(self, size: int) -> None:
        with self._lock:
            room = self.quota_bytes - self.used_bytes() - self._reserved
            if size > room:
                raise UploadRefused(self._full(size, room))
            self._reserved += size

    def _release(self, size: int) -> None:
        with self._lock:
            self._reserved -= size

    # ------------------------------------------------------------------------------------------- store
    def store(self, sha: str, data: bytes) -> int:
        """Unpack a model's zip into ``models/SHA/``: every member inside, no links, bounded as the module says.
        The bytes unpacked (0: it was there already)."""
        if self.has(sha):
            return 0
        if len(data) > self.max_upload_bytes:
            raise UploadRefused("the upload is over this agent's limit")
        try:
            zf = open_zip(io.BytesIO(data))
        except ZipLimitError:
            raise UploadRefused("the upload is not a zip of model files") from None
        with zf:
            try:
                declared = check_declared(zf, self.max_unpacked_bytes)
            except ZipLimitError as exc:
                raise UploadRefused(str(exc)) from None
            self._reserve(declared)
            try:
                return self._unpack(sha, zf, declared)
            finally:
                self._release(declared)

    def _unpack(self, sha: str, zf: zipfile.ZipFile, budget: int) -> int:
        final = self.models / sha
        tmp = self.models / f".{sha}.{os.getpid()}.{threading.get_ident()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        try:
            done = 0
            for info in zf.infolist():
                done += self._member(zf, info, tmp, budget - done)
            (tmp / COMPLETE).write_text(str(time.time()))
            if final.exists():  # an earlier, incomplete attempt
                shutil.rmtree(final, ignore_errors=True)
            os.replace(tmp, final)
            return done
        except ZipLimitError as exc:
            raise UploadRefused(str(exc)) from None
        except OSError as exc:  # the device's disk (full, a name too long): one line, no path of the agent's
            raise UploadRefused(f"the upload could not be unpacked: {exc.strerror or type(exc).__name__}") from None
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    @staticmethod
    def _member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, tmp: Path, budget: int) -> int:
        name = info.filename
        parts = Path(name).parts
        if (name.startswith(("/", "\\")) or ".." in parts or "\\" in name or not name.isprintable()
                or (parts and parts[0] == COMPLETE)):
            raise UploadRefused(f"the upload names a path outside its folder: {name[:80]!r}")
        target = (tmp / name).resolve()
        if tmp.resolve() not in target.parents:
            raise UploadRefused(f"the upload names a path outside its folder: {name[:80]!r}")
        if (info.external_attr >> 16) & 0o170000 == 0o120000:
            raise UploadRefused(f"the upload holds a symbolic link: {name[:80]!r}")
        if info.is_dir():
            target.mkdir(parents=True, exist_ok=True)
            return 0
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "xb") as dst:  # "x": two members of one name are refused, not overwritten
            return copy_member(zf, info, dst.write, budget)

    # --------------------------------------------------------------------------------------- references
    def resolve(self, where: str, ref: str) -> str:
        """``cas:SHA/NAME`` -> the path of NAME in upload SHA, which must be complete and hold it. Anything else
        is refused with the same words, whatever exists on the device."""
        sha, _, name = ref.removeprefix("cas:").partition("/")
        refused = RequestError(f"'{where}' names no upload on this agent (upload it first; cas:SHA256/NAME)")
        if not SHA_RE.fullmatch(sha) or not name.isprintable() or "\\" in name or not self.has(sha):
            raise refused
        base = (self.models / sha).resolve()
        parts = Path(name).parts
        if name.startswith("/") or ".." in parts or (parts and parts[0] == COMPLETE):
            raise refused
        path = (base / name).resolve() if name else base
        if (path != base and base not in path.parents) or not path.exists():
            raise refused
        return str(path)
