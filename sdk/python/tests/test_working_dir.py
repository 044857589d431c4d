"""`working_dir` packing: the same tree gives the digest the CLI gives (a golden value computed by
libs/blobs' packWorkingDir for this tree; tools/e2e and libs/blobs' tests compare the two live too),
whatever its mtimes and non-executable mode bits; .git/, .gitignore and .batchignore leave files
out; an oversize dir is refused naming the option, before anything is uploaded; stdlib tarfile
reads the package back."""
import io
import os
import tarfile
import tempfile
from typing import Dict

import pytest

from batchapi.errors import InvalidTask
from batchapi.working_dir import IgnoreRules, list_files, pack, split_path

#: packWorkingDir (node) of `FIXTURE`; the same constant is in libs/blobs/test/working-dir.spec.ts.
GOLDEN = "sha256:d5a391e28857686a01d0c2223bc1bb55bea14bba8979b74178547f77a49c9012"
FIXTURE: Dict[str, str] = {
    "main.py": 'print("hi")\n', "pkg/__init__.py": "", "pkg/util.py": "X = 1\n", "run.sh": "#!/bin/sh\necho ok\n", "café.txt": "é\n",
    ".gitignore": "*.log\nbuild/\n", ".batchignore": "data/\n/top.txt\n", "debug.log": "x", "build/out": "x", "data/a.csv": "x",
    "top.txt": "x", "pkg/top.txt": "kept\n", f"a/{'d' * 120}/f.txt": "long\n", ".git/HEAD": "x",
}


def make(root: str, files: Dict[str, str]) -> str:
    for path, content in files.items():
        os.makedirs(os.path.dirname(os.path.join(root, path)), exist_ok=True)
        with open(os.path.join(root, path), "w", encoding="utf-8") as f:
            f.write(content)
    if "run.sh" in files:
        os.chmod(os.path.join(root, "run.sh"), 0o755)
    return root


def test_packs_the_fixture_to_the_digest_the_cli_gives() -> None:
    with tempfile.TemporaryDirectory() as d:
        packed = pack(make(d, FIXTURE))
        assert (packed.digest, packed.files) == (GOLDEN, 9)


def test_the_digest_ignores_mtimes_and_non_executable_mode_bits() -> None:
    with tempfile.TemporaryDirectory() as d:
        root = make(d, FIXTURE)
        os.utime(os.path.join(root, "main.py"), (1_000_000, 1_000_000))
        os.chmod(os.path.join(root, "main.py"), 0o600)
        os.chmod(os.path.join(root, "run.sh"), 0o700)
        assert pack(root).digest == GOLDEN
        os.chmod(os.path.join(root, "main.py"), 0o700)
        assert pack(root).digest != GOLDEN


def test_leaves_out_git_and_what_the_ignore_files_name() -> None:
    with tempfile.TemporaryDirectory() as d:
        files, skipped = list_files(make(d, FIXTURE))
        assert [f[0] for f in files] == [".batchignore", ".gitignore", f"a/{'d' * 120}/f.txt", "café.txt", "main.py", "pkg/__init__.py",
                                         "pkg/top.txt", "pkg/util.py", "run.sh"]
        assert skipped == []


@pytest.mark.parametrize("patterns,path,is_dir,ignored", [
    ("*.pyc", "a/b/c.pyc", False, True),
    ("build/", "build", False, False),          # a dir-only pattern does not match a file
    ("build/", "src/build", True, True),        # unanchored: at any depth
    ("/top.txt", "pkg/top.txt", False, False),  # anchored to the root
    ("docs/*.md", "docs/a.md", False, True),
    ("docs/*.md", "docs/x/a.md", False, False),  # "*" stops at "/"
    ("**/cache", "a/b/cache", True, True),
    ("logs/**", "logs/x/y", False, True),
    ("*.csv\n!keep.csv", "keep.csv", False, False),  # the last matching rule wins
    ("file[0-9].txt", "file7.txt", False, True),
    ("# comment\n\n", "# comment", False, False),
])
def test_ignore_rules_match_as_git_does(patterns: str, path: str, is_dir: bool, ignored: bool) -> None:
    rules = IgnoreRules()
    rules.add(patterns)
    assert rules.ignores(path, is_dir) is ignored


def test_refuses_a_dir_over_the_bound_naming_the_option() -> None:
    with tempfile.TemporaryDirectory() as d:
        make(d, {"small.txt": "x", "weights.bin": "y" * 4096})
        with pytest.raises(InvalidTask) as e:
            pack(d, max_bytes=4096)
        assert e.value.code == "working_dir_too_large"
        assert "(working_dir_max_bytes); leave large files out with .batchignore (largest: weights.bin" in str(e.value)


def test_stdlib_tarfile_reads_the_package_back() -> None:
    with tempfile.TemporaryDirectory() as d:
        packed = pack(make(d, FIXTURE))
        with tarfile.open(fileobj=io.BytesIO(packed.gz), mode="r:gz") as t:
            members = {m.name: m for m in t.getmembers()}
            assert oct(members["run.sh"].mode) == "0o755" and members["main.py"].mtime == 0
            data = t.extractfile(members[f"a/{'d' * 120}/f.txt"])
            assert data is not None and data.read() == b"long\n"


def test_a_path_too_long_for_ustar_is_refused() -> None:
    assert split_path(f"{'d' * 120}/{'f' * 90}") == ("d" * 120, "f" * 90)
    with pytest.raises(InvalidTask, match="at most 255 bytes"):
        split_path("x" * 101)
