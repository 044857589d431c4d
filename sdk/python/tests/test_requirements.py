"""`batch.read_requirements`: requirements and lock files (pip-compile's, with hashes or without)
into `requirements=`, refusing with the file and line what the node would not install."""
from pathlib import Path

import pytest

import batchapi as batch
import sample_tasks as t

A, B = "a" * 64, "b" * 64


@pytest.mark.parametrize("text, lines", [
    ("scikit-learn==1.5.2\nnumpy==2.1.0\n", ["scikit-learn==1.5.2", "numpy==2.1.0"]),
    ("# pinned\n\nnumpy==2.1.0  # arrays\n", ["numpy==2.1.0"]),
    # pip-compile --generate-hashes: continuations, hashes, "# via" comments
    (f"joblib==1.4.2 \\\n    --hash=sha256:{A} \\\n    --hash=sha256:{B}\n    # via scikit-learn\n"
     f"tomli==2.0.1 ; python_version < \"3.11\" \\\n    --hash=sha256:{A}\n",
     [f"joblib==1.4.2 --hash=sha256:{A} --hash=sha256:{B}", f"tomli==2.0.1 ; python_version < \"3.11\" --hash=sha256:{A}"]),
    (f"numpy==2.1.0 --hash sha256:{A}\r\n", [f"numpy==2.1.0 --hash=sha256:{A}"]),
])
def test_reads_requirements_and_lock_files(tmp_path: Path, text: str, lines: list[str]) -> None:
    (tmp_path / "r.txt").write_text(text)
    assert batch.read_requirements(tmp_path / "r.txt") == lines
    # what it reads is what requirements= takes, and reaches the job request as it is
    assert t.square.options(requirements=lines).job_body((3,))["python"] == {"requirements": lines}


@pytest.mark.parametrize("text, message", [
    ("numpy\n--index-url https://x/simple\n", "r.txt:2: '--index-url https://x/simple': a pip option"),
    ("-e .\n", "r.txt:1: '-e .': a pip option"),
    ("numpy==2.1.0 \\\n  --hash=sha256:abc\n", "r.txt:1: 'numpy==2.1.0 --hash=sha256:abc': '--hash=sha256:abc' is not a hash option"),
    (f"numpy>=2 --hash=sha256:{A}\n", "is not pinned to one version with =="),
    (f"numpy==2.1.0 \\\n  --hash=sha256:{A}\n# via x\nscipy==1.14.1\n", "r.txt:4: 'scipy==1.14.1' has no --hash while line 1 has"),
    ("# nothing\n", "r.txt lists no requirement"),
])
def test_refuses_what_the_node_would_not_install_naming_the_line(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "r.txt").write_text(text)
    with pytest.raises(batch.InvalidTask) as e:
        batch.read_requirements(tmp_path / "r.txt")
    assert (e.value.code, e.value.field) == ("invalid_requirements", "requirements")
    assert message in str(e.value)


def test_a_file_that_cannot_be_read_says_so(tmp_path: Path) -> None:
    with pytest.raises(batch.InvalidTask, match="cannot read .*nope.txt"):
        batch.read_requirements(tmp_path / "nope.txt")
