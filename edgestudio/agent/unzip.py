"""Zips from a token holder, read with bounds: an upload (a model's files) and a parity call's feeds (an npz).

A zip's headers declare each member's size; they are checked before anything is inflated, and the bytes really
inflated are counted as they come, since headers can lie. Standard library only (the worker that decodes feeds
imports this too).
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from typing import BinaryIO, TypeVar

_T = TypeVar("_T")

CHUNK = 1 << 20
MAX_MEMBERS = 10_000
# the studio sends its uploads stored (not compressed): a member inflating to more than this many times its
# compressed size is a decompression bomb, whatever the limits leave room for
MAX_RATIO = 100
# bytes of slack per member before the ratio applies (a tiny deflated file may legitimately expand 100x)
RATIO_SLACK = 64 << 10


class ZipLimitError(ValueError):
    """A zip over a limit, or one that cannot be read; the message is one line naming the cause."""


def open_zip(data: BinaryIO) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(data)
    except (zipfile.BadZipFile, EOFError, ValueError, OSError):
        raise ZipLimitError("not a zip") from None


def check_declared(zf: zipfile.ZipFile, limit: int, what: str = "the upload") -> int:
    """The total size the headers declare; over ``limit``, too many members or a member that claims to inflate
    beyond :data:`MAX_RATIO`: refused before anything is inflated."""
    infos = zf.infolist()
    if len(infos) > MAX_MEMBERS:
        raise ZipLimitError(f"{what}: {len(infos):,} files, more than the {MAX_MEMBERS:,} allowed")
    total = 0
    for info in infos:
        if info.flag_bits & 0x1:
            raise ZipLimitError(f"{what}: encrypted zip members are not taken")
        if info.file_size > RATIO_SLACK + MAX_RATIO * info.compress_size:
            raise ZipLimitError(f"{what}: a member inflates more than {MAX_RATIO}x (a decompression bomb)")
        total += info.file_size
        if total > limit:
            raise ZipLimitError(f"{what}: unpacks to more than the limit of {limit:,} bytes (--max-unpacked-mb)")
    return total


def copy_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, write: Callable[[bytes], object], budget: int,
                what: str = "the upload") -> int:
    """Inflate one member into ``write``, counting real bytes: more than its header declared, more than
    ``budget`` or beyond :data:`MAX_RATIO` is refused mid-way. The bytes written (``write``'s own errors, a
    full disk, pass through)."""
    cap = min(budget, info.file_size, RATIO_SLACK + MAX_RATIO * info.compress_size)
    done = 0
    src = _guarded(lambda: zf.open(info), what)
    with src:
        while chunk := _guarded(lambda: src.read(CHUNK), what):
            done += len(chunk)
            if done > cap:
                raise ZipLimitError(f"{what}: a member inflates to more than its header declares or the limit allows")
            write(chunk)
    return done


def _guarded(read: Callable[[], _T], what: str) -> _T:
    """A zip read whose failure (corrupt stream, unsupported method, encryption, truncation) is the zip's."""
    try:
        return read()
    except Exception:  # noqa: BLE001 - zlib.error, BadZipFile, NotImplementedError, EOFError...: one cause
        raise ZipLimitError(f"{what}: a damaged or unsupported zip") from None


def read_members(data: BinaryIO, limit: int, what: str = "the feeds") -> dict[str, bytes]:
    """Every member's bytes, in memory, all bounded by ``limit`` (declared, then real)."""
    with open_zip(data) as zf:
        check_declared(zf, limit, what)
        out: dict[str, bytes] = {}
        left = limit
        for info in zf.infolist():
            parts: list[bytes] = []
            left -= copy_member(zf, info, parts.append, left, what)
            out[info.filename] = b"".join(parts)
        return out
