"""Requirements files for `requirements=`: `read_requirements("requirements.lock")` reads a pip
requirements file or a lock file (`pip-compile`'s or `uv pip compile`'s, with `--generate-hashes` or
without) into the list of lines a task option takes, as `batch submit --python-requirements` does.

Comments, blank lines and `\\` continuations are pip's. Every line left must be a requirement
specifier ("scikit-learn==1.5.2"), optionally followed by `--hash=sha256:<64 hex>` options; with one
hashed line every line needs hashes and an `==` pin (pip's hash-checking mode, which the node then
runs with `--require-hashes`). Other pip options (`-e`, `-r`, `--index-url`), paths and URLs are
refused with the file and line: the node installs only from the index its operator configured.
"""
from __future__ import annotations

import os
import re
from typing import List, Optional, Union

from .errors import InvalidTask

MAX_REQUIREMENTS = 500
"""Most lines of `requirements=` (the API's bound; it checks each line's grammar too)."""
MAX_REQUIREMENT_CHARS = 200
"""Longest specifier of one line, its `--hash` options aside."""
MAX_REQUIREMENT_HASHES = 128
"""Most `--hash` options of one line."""

_HASH_START = re.compile(r"(^|[ \t])--hash\b")
_HASH = re.compile(r"^--hash=sha256:([0-9A-Fa-f]{64})$")
_PINNED = re.compile(r"^\s*[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?\s*(?:\[[^\]]*\])?\s*===?\s*[A-Za-z0-9.+!_]+(?:-[A-Za-z0-9.+!_]+)*\s*$")


def hashed(line: str) -> bool:
    """Whether a requirement line carries `--hash` options."""
    return bool(_HASH_START.search(line))


def requirement_problem(line: str) -> Optional[str]:
    """What is wrong with one requirement line for `requirements=` (None when the SDK's checks pass;
    the API checks the specifier's grammar itself and answers 400 naming `python.requirements.N`)."""
    if not line.strip():
        return "an empty line"
    m = _HASH_START.search(line)
    spec = (line[:m.start()] if m else line).strip()
    if not spec or spec.startswith("-"):
        return "a pip option; only requirement specifiers (with their --hash options) are taken"
    if len(spec) > MAX_REQUIREMENT_CHARS:
        return f"a specifier of {len(spec)} characters, over {MAX_REQUIREMENT_CHARS}"
    if m:
        words = line[m.start():].split()
        for w in words:
            if not _HASH.match(w):
                return f"{w[:80]!r} is not a hash option: write --hash=sha256:<64 hex digits>"
        if len(words) > MAX_REQUIREMENT_HASHES:
            return f"{len(words)} --hash options, over {MAX_REQUIREMENT_HASHES}"
        if not _PINNED.match(spec.split(";")[0]):
            return f"{spec!r} has hashes but is not pinned to one version with == (pip's hash-checking mode)"
    return None


def mixed_hashes(lines: List[str]) -> Optional[int]:
    """The index of the first line without hashes when another has some (pip's rule), else None."""
    marks = [hashed(line) for line in lines]
    return marks.index(False) if any(marks) and not all(marks) else None


def requirements_from_text(text: str, source: str = "<requirements>") -> List[str]:
    """The requirement lines of a requirements file's text; `source` names it in errors."""
    out: List[str] = []
    numbers: List[int] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        number = i + 1
        line = lines[i]
        while line.endswith("\\") and i + 1 < len(lines):
            i += 1
            line = line[:-1] + " " + lines[i]
        i += 1
        # pip: a comment starts at "#" at the line's start or after a blank
        line = " ".join(re.sub(r"(^|\s)#.*$", "", line).split())
        line = re.sub(r"(^| )--hash (?=\S)", r"\1--hash=", line)
        if not line:
            continue
        problem = requirement_problem(line)
        if problem:
            raise InvalidTask("invalid_requirements", f"{source}:{number}: {line[:120]!r}: {problem}", "requirements")
        out.append(line)
        numbers.append(number)
    if not out:
        raise InvalidTask("invalid_requirements", f"{source} lists no requirement", "requirements")
    if len(out) > MAX_REQUIREMENTS:
        raise InvalidTask("invalid_requirements", f"{source} lists {len(out)} requirements, over the {MAX_REQUIREMENTS} a job may carry",
                          "requirements")
    bare = mixed_hashes(out)
    if bare is not None:
        first = numbers[[hashed(x) for x in out].index(True)]
        raise InvalidTask("invalid_requirements", f"{source}:{numbers[bare]}: {out[bare]!r} has no --hash while line {first} has: with one hash "
                          "pip checks every requirement (pip-compile --generate-hashes writes them all)", "requirements")
    return out


def read_requirements(path: Union[str, "os.PathLike[str]"]) -> List[str]:
    """The requirement lines of a requirements or lock file, for `requirements=`:

        @batch.task(requirements=batch.read_requirements("requirements.lock"))
        def train(cfg: dict) -> float: ...

    Raises InvalidTask (`invalid_requirements`, naming the file and line) for a pip option, a path,
    a URL, a malformed hash or a file with hashes on some lines only."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise InvalidTask("invalid_requirements", f"cannot read {os.fspath(path)}: {e.strerror or e}", "requirements") from None
    return requirements_from_text(text, os.fspath(path))
