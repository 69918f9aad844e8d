"""Find private keys in a file's bytes, whatever the file: PEM (also in binary files and files with NUL bytes,
also JSON-escaped), DER (PKCS#1, PKCS#8, SEC1 EC, ...: whatever cryptography loads as a private key), in files
of any size (read in windows, never whole), and inside tar, zip, gzip, bzip2 and xz archives, recursively.

Archives are bounded: nesting depth, members and decompressed bytes. Past a bound the file is reported as
too large to inspect (a finding), never read on: an archive bomb costs at most MAX_EXPANDED bytes of work.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import lzma
import re
import struct
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

WINDOW = 4 * 1024 * 1024
OVERLAP = 64 * 1024  # longer than any key this finds (a PEM RSA-16384 key is ~13 KB)
MAX_DER_BYTES = 16 * 1024
MAX_DER_ATTEMPTS = 100_000  # structures that start like a key, per file: past that, too many to inspect
MAX_ARCHIVE_DEPTH = 4
MAX_MEMBERS = 10_000
MAX_EXPANDED = 64 * 1024 * 1024  # decompressed bytes per file of the repo
MAX_BUFFERED = 32 * 1024 * 1024  # a zip inside another archive is read into memory (zip needs to seek)
MAX_DIRECTORY_BYTES = 16 * 1024 * 1024

# "BEGIN <words> PRIVATE KEY" between dashes followed by key material, so prose that only names the marker is
# not taken for a key; a JSON/YAML-escaped PEM (\n spelt out) counts.
_PEM = re.compile(rb"-----BEGIN ((?:[A-Z0-9]+ )*)PRIVATE KEY(?: BLOCK)?-----(?:\\[nr]|\s|[A-Za-z-]+: [^\n]*)*[A-Za-z0-9+/=]{40}")
# DER: SEQUENCE (short or long length) holding INTEGER version 0 or 1 first, as every private-key syntax does.
_DER = re.compile(rb"\x30(?:[\x00-\x7f]|\x81[\x80-\xff]|\x82[\x00-\xff]{2})\x02\x01[\x00\x01]")
_DER_HINT = b"\x02\x01"


class Uninspectable(Exception):
    """The file cannot be inspected within the bounds (the message says which)."""


@dataclass(frozen=True)
class KeyFound:
    form: str  # PEM | DER
    kind: str  # RSA, EC, PKCS#8, OPENSSH, ...
    line: int | None  # 1-based line in the file; None inside archives
    member: str | None = None  # where inside an archive ("kit.tar/startup/site.key"); "" for compressed content

    def describe(self) -> str:
        where = f" inside archive member {self.member}" if self.member else " inside its compressed content" if self.member == "" else ""
        return f"contains a private key ({self.kind}, {self.form} form){where}"


@dataclass(frozen=True)
class FileScan:
    keys: tuple[KeyFound, ...] = ()
    uninspectable: str | None = None  # why the file could not be inspected completely


@dataclass
class _Budget:
    expanded: int = MAX_EXPANDED
    members: int = MAX_MEMBERS
    der_attempts: int = MAX_DER_ATTEMPTS

    def expand(self, n: int) -> None:
        self.expanded -= n
        if self.expanded < 0:
            raise Uninspectable(f"archive too large to inspect: more than {MAX_EXPANDED // (1024 * 1024)} MiB decompressed")

    def member(self) -> None:
        self.members -= 1
        if self.members < 0:
            raise Uninspectable(f"archive too large to inspect: more than {MAX_MEMBERS} members")


@dataclass
class _Found:
    keys: dict[str, KeyFound] = field(default_factory=dict)  # by digest of the key's bytes: one report per key

    def add(self, raw: bytes, key: KeyFound) -> None:
        """Keep the most precise place of a key seen twice (an archive's raw bytes, then its member)."""
        digest = hashlib.sha256(raw).hexdigest()
        known = self.keys.get(digest)
        if known is None or (key.member is not None and (known.member is None or len(key.member) > len(known.member))):
            self.keys[digest] = key


# --------------------------------------------------------------------------------------------- plain bytes


def _der_kind(raw: bytes) -> str | None:
    from cryptography.hazmat.primitives.serialization import load_der_private_key

    try:
        key = load_der_private_key(raw, password=None, unsafe_skip_rsa_key_validation=True)
    except Exception:  # noqa: BLE001 - not a key (or one cryptography cannot load): nothing to report
        return None
    name = type(key).__name__.removesuffix("PrivateKey").lstrip("_") or "private"
    header = 2 if raw[1] < 0x80 else 2 + (raw[1] & 0x7F)
    syntax = "PKCS#8" if raw[header + 3 : header + 4] == b"\x30" else "traditional"  # after the version
    return f"{name} ({syntax})"


def _der_length(data: bytes, start: int) -> int | None:
    """Total length of the DER SEQUENCE at start, or None when it cannot be a key."""
    first = data[start + 1]
    if first < 0x80:
        total = 2 + first
    elif first == 0x81:
        total = 3 + data[start + 2]
    else:
        total = 4 + int.from_bytes(data[start + 2 : start + 4], "big")
    return total if total <= MAX_DER_BYTES and start + total <= len(data) else None


def _window_keys(data: bytes, budget: _Budget) -> Iterator[tuple[int, bytes, str, str]]:
    """(offset, key bytes, form, kind) of every key in data."""
    for match in _PEM.finditer(data):
        kind = (match.group(1) or b"").decode().strip() or "PKCS#8"
        yield match.start(), match.group(), "PEM", kind
    if _DER_HINT not in data:
        return
    covered = 0  # end of the last key found: a PKCS#8 key holds a traditional one, reported once
    for match in _DER.finditer(data):
        if match.start() < covered:
            continue
        budget.der_attempts -= 1
        if budget.der_attempts < 0:
            raise Uninspectable(f"more than {MAX_DER_ATTEMPTS} structures that start like a DER key: too many to inspect")
        total = _der_length(data, match.start())
        if total is None:
            continue
        raw = data[match.start() : match.start() + total]
        kind = _der_kind(raw)
        if kind is not None:
            covered = match.start() + total
            yield match.start(), raw, "DER", kind


def _scan_plain(read: Callable[[int], bytes], member: str | None, budget: _Budget, found: _Found, first: bytes = b"") -> None:
    """Scan a stream in overlapping windows: a key across a window border is found in the next window."""
    base, lines = 0, 0  # stream offset of data[0]; newlines before it
    data = first + read(WINDOW - len(first)) if len(first) < WINDOW else first
    while data:
        more = read(WINDOW)
        last = not more
        limit = len(data) if last else len(data) - OVERLAP
        for offset, raw, form, kind in _window_keys(data, budget):
            if offset < limit:
                line = None if member is not None else lines + data.count(b"\n", 0, offset) + 1
                found.add(raw, KeyFound(form, kind, line, member))
        if last:
            return
        lines += data.count(b"\n", 0, limit)
        base += limit
        data = data[limit:] + more


# ----------------------------------------------------------------------------------------------- archives

_GZIP, _BZIP2, _XZ = b"\x1f\x8b\x08", b"BZh", b"\xfd7zXZ\x00"
_ZIP_HEADS = (b"PK\x03\x04", b"PK\x05\x06")
_ZIP_END = b"PK\x05\x06"


def _is_tar(head: bytes) -> bool:
    if len(head) < tarfile.BLOCKSIZE:
        return False
    try:
        tarfile.TarInfo.frombuf(head[: tarfile.BLOCKSIZE], tarfile.ENCODING, "surrogateescape")
    except tarfile.HeaderError:
        return False
    return True


def _decompressor(head: bytes, stream: IO[bytes]) -> IO[bytes] | None:
    if head.startswith(_GZIP):
        return gzip.GzipFile(fileobj=stream, mode="rb")  # type: ignore[return-value]
    if head.startswith(_BZIP2) and head[3:4].isdigit():
        return bz2.BZ2File(stream)
    if head.startswith(_XZ):
        return lzma.LZMAFile(stream)
    return None


class _Counted(io.RawIOBase):
    """A decompressing stream whose output is charged to the budget as it is read."""

    def __init__(self, inner: IO[bytes], budget: _Budget) -> None:
        self.inner, self.budget = inner, budget

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.inner.read(len(buffer))
        self.budget.expand(len(data))
        buffer[: len(data)] = data
        return len(data)


def _check_zip_end(tail: bytes, member: str | None) -> None:
    """Refuse a zip whose end record announces more members (or a larger central directory) than the bounds,
    before zipfile reads its whole central directory."""
    at = tail.rfind(_ZIP_END)
    if at < 0 or len(tail) < at + 22:
        return
    entries, directory_size = struct.unpack_from("<HI", tail, at + 10)
    if entries > MAX_MEMBERS or directory_size > MAX_DIRECTORY_BYTES:
        where = f" {member}" if member else ""
        raise Uninspectable(f"archive too large to inspect: zip{where} announces {entries} members in a {directory_size}-byte directory")


def _scan_zip(stream: IO[bytes], tail: bytes, member: str | None, depth: int, budget: _Budget, found: _Found) -> None:
    _check_zip_end(tail, member)
    try:
        archive = zipfile.ZipFile(stream)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return  # not a zip after all
    with archive:
        infos = archive.infolist()
        for info in infos:
            budget.member()
            if info.is_dir():
                continue
            name = f"{member}/{info.filename}" if member else info.filename
            try:
                with archive.open(info) as inner:
                    _scan_stream(io.BufferedReader(_Counted(inner, budget)), name, depth + 1, budget, found, seekable=False)
            except (RuntimeError, NotImplementedError) as exc:  # encrypted, or a compression zipfile lacks
                raise Uninspectable(f"archive member {name} cannot be read ({exc})") from None
            except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as exc:
                raise Uninspectable(f"archive member {name} is damaged ({exc})") from None


def _scan_stream(stream: IO[bytes], member: str | None, depth: int, budget: _Budget, found: _Found, *, seekable: bool) -> None:
    """Keys in one stream: the plain bytes, and what it holds when it is an archive or compressed."""
    head = stream.read(tarfile.BLOCKSIZE)
    nested = depth >= MAX_ARCHIVE_DEPTH
    rest = io.BufferedReader(_Rest(head, stream))  # one reader: dropping a BufferedReader closes what it wraps
    compressed = _decompressor(head, rest)
    if compressed is not None:
        if nested:
            raise Uninspectable(f"archive too large to inspect: archives nested deeper than {MAX_ARCHIVE_DEPTH}")
        try:
            _scan_stream(io.BufferedReader(_Counted(compressed, budget)), member or "", depth + 1, budget, found, seekable=False)
        except (OSError, EOFError, zlib.error, lzma.LZMAError) as exc:
            raise Uninspectable(f"compressed data{' in ' + member if member else ''} is damaged ({exc})") from None
        return
    if _is_tar(head):
        if nested:
            raise Uninspectable(f"archive too large to inspect: archives nested deeper than {MAX_ARCHIVE_DEPTH}")
        try:
            with tarfile.open(fileobj=rest, mode="r|") as archive:
                for info in archive:
                    budget.member()
                    extracted = archive.extractfile(info) if info.isfile() else None
                    if extracted is not None:
                        name = f"{member}/{info.name}" if member else info.name
                        _scan_stream(extracted, name, depth + 1, budget, found, seekable=False)
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise Uninspectable(f"tar archive{' ' + member if member else ''} is damaged ({exc})") from None
        return
    if seekable:
        _scan_plain(stream.read, member, budget, found, head)
        tail = _tail(stream)
        if head.startswith(_ZIP_HEADS) or _ZIP_END in tail:  # a zip, perhaps after prepended bytes
            if nested:
                raise Uninspectable(f"archive too large to inspect: archives nested deeper than {MAX_ARCHIVE_DEPTH}")
            stream.seek(0)
            _scan_zip(stream, tail, member, depth, budget, found)
        return
    # A member of an archive: read into memory when small enough to look for a zip in it (zip needs to seek).
    data = head + stream.read(MAX_BUFFERED + 1 - len(head))
    if len(data) <= MAX_BUFFERED:
        _scan_stream(io.BytesIO(data), member, depth, budget, found, seekable=True)
    elif head.startswith(_ZIP_HEADS):
        raise Uninspectable(f"archive too large to inspect: zip member {member} is larger than {MAX_BUFFERED // (1024 * 1024)} MiB")
    else:
        _scan_plain(stream.read, member, budget, found, data)


def _tail(stream: IO[bytes]) -> bytes:
    """The last 64 KiB + 22 bytes (where a zip's end record is, even after prepended data)."""
    end = stream.seek(0, io.SEEK_END)
    stream.seek(max(0, end - 65_558))
    return stream.read()


class _Rest(io.RawIOBase):
    """head, then the rest of stream: the bytes already read to recognise the format, put back."""

    def __init__(self, head: bytes, stream: IO[bytes]) -> None:
        self.head, self.stream = head, stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.head:
            n = min(len(buffer), len(self.head))
            buffer[:n], self.head = self.head[:n], self.head[n:]
            return n
        data = self.stream.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


# ------------------------------------------------------------------------------------------------ entry


def _result(found: _Found, problem: str | None = None) -> FileScan:
    keys = sorted(found.keys.values(), key=lambda k: (k.member or "", k.line or 0, k.form, k.kind))
    return FileScan(tuple(keys), problem)


def _archive_like(data: bytes) -> bool:
    head = data[: tarfile.BLOCKSIZE]
    return head.startswith((_GZIP, _BZIP2, _XZ, *_ZIP_HEADS)) or _ZIP_END in data[-65_558:] or _is_tar(head)


def scan_bytes(data: bytes) -> FileScan:
    """Keys in a file already read whole."""
    if _archive_like(data):
        return _scan(io.BytesIO(data))
    found = _Found()  # the common case, without the stream machinery
    try:
        for offset, raw, form, kind in _window_keys(data, _Budget()):
            found.add(raw, KeyFound(form, kind, data.count(b"\n", 0, offset) + 1))
    except Uninspectable as exc:
        return _result(found, str(exc))
    return _result(found)


def scan_path(path: Path) -> FileScan:
    """Keys in a file of any size, read in windows."""
    try:
        with path.open("rb") as fh:
            return _scan(fh)
    except OSError as exc:
        return FileScan((), f"cannot be read ({exc.strerror})")


def _scan(stream: IO[bytes]) -> FileScan:
    found = _Found()
    try:
        _scan_stream(stream, None, 0, _Budget(), found, seekable=True)
    except Uninspectable as exc:
        return _result(found, str(exc))
    return _result(found)
