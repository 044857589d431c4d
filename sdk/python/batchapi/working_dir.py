"""`working_dir`: a directory of code shipped to the nodes, each task's cwd there (read-only).

Packed exactly as the CLI packs it (libs/blobs/src/working-dir.ts), so that the same tree has the
same digest from either: a ustar archive of the regular files, sorted by path (bytewise UTF-8),
mode 0755 when any executable bit is set else 0644, uid, gid and mtime 0, no user or group names,
two zero blocks at the end. The digest `sha256:<hex>` is of that tar (not of its gzip: zlib builds
need not compress alike); the tar travels gzip-compressed. Left out: `.git/`, what the root's
`.gitignore` and `.batchignore` name (gitignore syntax), symbolic links and special files.

Standard library only.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import re
import stat
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Dict, List, Optional, Tuple

from .errors import InvalidTask

if TYPE_CHECKING:
    from .client import Client

#: Largest working dir packed by default: its tar, in bytes (100 MiB), the API's default bound.
DEFAULT_MAX_BYTES = 100 * 1024 * 1024
IGNORE_FILES = (".gitignore", ".batchignore")
_BLOCK = 512


@dataclass
class Packed:
    """A packed working dir."""

    digest: str
    """`sha256:<hex>` of the tar."""
    gz: bytes
    """The tar, gzip-compressed: what is uploaded."""
    files: int
    tar_bytes: int
    skipped: List[str] = field(default_factory=list)
    """Paths left out because they are not regular files or directories."""


# -- gitignore patterns ------------------------------------------------------------------------


def _translate(glob: str) -> str:
    """A gitignore glob (no leading "/" or trailing "/") as a regex over a relative path."""
    out = ""
    i = 0
    while i < len(glob):
        c = glob[i]
        if glob.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
            continue
        if glob.startswith("/**", i) and i + 3 == len(glob):
            out += "/.*"
            i += 3
            continue
        if glob.startswith("**", i):
            out += ".*"
            i += 2
            continue
        if c == "*":
            out += "[^/]*"
        elif c == "?":
            out += "[^/]"
        elif c == "[":
            end = glob.find("]", i + 2 if glob[i + 1:i + 2] in ("!", "^") else i + 1)
            if end < 0:
                out += re.escape(c)
            else:
                body = glob[i + 1:end]
                if body[:1] in ("!", "^"):
                    body = "^" + body[1:]
                out += "[" + body.replace("\\", "\\\\") + "]"
                i = end
        elif c == "\\" and i + 1 < len(glob):
            i += 1
            out += re.escape(glob[i])
        else:
            out += re.escape(c)
        i += 1
    return out


class IgnoreRules:
    """The rules of gitignore files, matched as git matches them (the last rule that matches wins)."""

    def __init__(self) -> None:
        self._rules: List[Tuple[re.Pattern[str], bool, bool]] = []

    def add(self, text: str) -> None:
        for raw in text.splitlines():
            line = raw.rstrip("\r")
            # trailing spaces are trimmed unless escaped
            stripped = line.rstrip(" ")
            if stripped.endswith("\\") and len(stripped) < len(line):
                stripped += " "
            line = stripped
            if not line or line.startswith("#"):
                continue
            negate = line.startswith("!")
            if negate:
                line = line[1:]
            elif line.startswith("\\"):
                line = line[1:]
            dir_only = line.endswith("/")
            line = line.rstrip("/")
            if not line:
                continue
            anchored = "/" in line
            line = line.lstrip("/")
            regex = _translate(line)
            if not anchored:
                regex = "(?:.*/)?" + regex
            self._rules.append((re.compile(f"^{regex}$", re.DOTALL), negate, dir_only))

    def ignores(self, path: str, is_dir: bool) -> bool:
        ignored = False
        for regex, negate, dir_only in self._rules:
            if dir_only and not is_dir:
                continue
            if regex.match(path):
                ignored = not negate
        return ignored


# -- packing -----------------------------------------------------------------------------------


def list_files(root: str) -> Tuple[List[Tuple[str, int, bool]], List[str]]:
    """The files `pack` packs, as (path, size, executable), in archive order; and those skipped."""
    if not os.path.isdir(root):
        raise InvalidTask("working_dir_unreadable", f"working dir {root} is not a directory", "working_dir")
    rules = IgnoreRules()
    rules.add(".git/")
    for name in IGNORE_FILES:
        try:
            with open(os.path.join(root, name), encoding="utf-8") as f:
                rules.add(f.read())
        except OSError:
            pass
    files: List[Tuple[str, int, bool]] = []
    skipped: List[str] = []

    def walk(rel: str) -> None:
        for name in os.listdir(os.path.join(root, rel) if rel else root):
            path = f"{rel}/{name}" if rel else name
            st = os.lstat(os.path.join(root, path))
            if stat.S_ISDIR(st.st_mode):
                if not rules.ignores(path, True):
                    walk(path)
            elif rules.ignores(path, False):
                continue
            elif stat.S_ISREG(st.st_mode):
                files.append((path, st.st_size, bool(st.st_mode & 0o111)))
            else:
                skipped.append(path)

    walk("")
    files.sort(key=lambda f: f[0].encode("utf-8"))
    return files, skipped


def _padded(n: int) -> int:
    return (n + _BLOCK - 1) // _BLOCK * _BLOCK


def split_path(path: str) -> Tuple[str, str]:
    """A path as ustar's (prefix ≤ 155 bytes, name ≤ 100 bytes), split at the last "/" that fits both."""
    b = path.encode("utf-8")
    if len(b) <= 100:
        return "", path
    for i in range(min(len(b) - 2, 155), 0, -1):
        if b[i] == 0x2F and len(b) - i - 1 <= 100:
            return b[:i].decode("utf-8"), b[i + 1:].decode("utf-8")
    raise InvalidTask("working_dir_path_too_long",
                      f"{path}: paths in a working dir are at most 255 bytes (a name at most 100); leave it out with .batchignore", "working_dir")


def _header(path: str, mode: int, size: int) -> bytes:
    prefix, name = split_path(path)
    h = bytearray(_BLOCK)

    def put(offset: int, width: int, data: bytes) -> None:
        h[offset:offset + len(data[:width])] = data[:width]

    def octal(offset: int, width: int, value: int) -> None:
        put(offset, width, f"{value:0{width - 1}o}".encode("ascii") + b"\0")

    put(0, 100, name.encode("utf-8"))
    octal(100, 8, mode)
    octal(108, 8, 0)
    octal(116, 8, 0)
    octal(124, 12, size)
    octal(136, 12, 0)
    put(148, 8, b" " * 8)
    put(156, 1, b"0")
    put(257, 8, b"ustar\x0000")
    octal(329, 8, 0)
    octal(337, 8, 0)
    put(345, 155, prefix.encode("utf-8"))
    put(148, 8, f"{sum(h):06o}".encode("ascii") + b"\0 ")
    return bytes(h)


def _mib(n: int) -> str:
    return f"{n / 1024 / 1024:.1f}"


def pack(root: str, max_bytes: int = DEFAULT_MAX_BYTES, option_name: str = "working_dir_max_bytes") -> Packed:
    """Packs `root`; a tar over `max_bytes` is refused before any file is read (`InvalidTask`
    `working_dir_too_large`, naming `option_name`)."""
    files, skipped = list_files(root)
    tar_bytes = sum(_BLOCK + _padded(size) for _, size, _ in files) + 2 * _BLOCK
    if tar_bytes > max_bytes:
        biggest = sorted(files, key=lambda f: -f[1])[:3]
        raise InvalidTask("working_dir_too_large",
                          f"working dir {root} packs to {_mib(tar_bytes)} MiB, over the limit of {_mib(max_bytes)} MiB ({option_name}); "
                          f"leave large files out with .batchignore (largest: {', '.join(f'{p} {_mib(s)} MiB' for p, s, _ in biggest)})",
                          option_name)
    parts: List[bytes] = []
    for path, size, executable in files:
        with open(os.path.join(root, path), "rb") as f:
            body = f.read()
        if len(body) != size:
            raise InvalidTask("working_dir_unreadable", f"{path} changed while the working dir was packed; pack again", "working_dir")
        parts += [_header(path, 0o755 if executable else 0o644, len(body)), body, b"\0" * (_padded(len(body)) - len(body))]
    parts.append(b"\0" * (2 * _BLOCK))
    tar = b"".join(parts)
    return Packed(digest="sha256:" + hashlib.sha256(tar).hexdigest(), gz=gzip.compress(tar, mtime=0), files=len(files),
                  tar_bytes=len(tar), skipped=skipped)


# -- uploading ---------------------------------------------------------------------------------

def _signature(root: str) -> Tuple[Tuple[str, int, int, int], ...]:
    files, _ = list_files(root)
    out = []
    for path, _size, _x in files:
        st = os.stat(os.path.join(root, path))
        out.append((path, st.st_size, st.st_mtime_ns, st.st_mode))
    return tuple(out)


def upload(client: "Client", root: str, max_bytes: int = DEFAULT_MAX_BYTES) -> str:
    """Packs `root` and uploads it unless the tenant already has it; its digest (what a job's
    `workingDir.digest` names). A directory unchanged since this process last uploaded it is
    neither packed nor asked about again."""
    root = os.path.abspath(root)
    # What this client uploaded, by the listing it was packed from: a loop of submits packs once.
    uploaded: Dict[Tuple[str, int, Tuple[Tuple[str, int, int, int], ...]], str] = client.__dict__.setdefault("_uploaded_working_dirs", {})
    key = (root, max_bytes, _signature(root))
    known = uploaded.get(key)
    if known is not None:
        return known
    packed = pack(root, max_bytes)
    if not client.has_working_dir(packed.digest):
        client.upload_working_dir(packed.digest, packed.gz)
    uploaded[key] = packed.digest
    return packed.digest
