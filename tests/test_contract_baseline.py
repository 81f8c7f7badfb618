"""The released sigma.v1 contract guards itself: `buf breaking` against protos/released/ fails on a break."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BASELINE = ROOT / "protos" / "released" / "sigma-v1.json"


def _breaking(workspace: Path) -> subprocess.CompletedProcess[str]:
    buf = ROOT / "node_modules" / ".bin" / "buf"
    if not buf.exists():
        pytest.fail("the buf CLI is missing: run `make setup` (it installs package.json's tools)")
    return subprocess.run(
        [str(buf), "breaking", "--against", str(BASELINE)],
        cwd=workspace,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _copy_of_the_contract(tmp_path: Path) -> Path:
    shutil.copy(ROOT / "buf.yaml", tmp_path / "buf.yaml")
    shutil.copytree(ROOT / "protos", tmp_path / "protos")
    shutil.copytree(ROOT / "third_party", tmp_path / "third_party")
    return tmp_path


def test_the_contract_as_it_stands_does_not_break_the_release(tmp_path: Path) -> None:
    result = _breaking(_copy_of_the_contract(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("old", "new", "complaint"),
    [
        ("  bool replayed = 2;", "  bool replayed = 3;", "replayed"),
        ("  string symbol = 4;\n  // The consensus direction.", "  string coin = 4;\n  // x", "symbol"),
        ("  ERROR_REASON_DATABASE_UNAVAILABLE = 13;\n", "", 'enum value "13"'),
    ],
    ids=["field-renumbered", "field-renamed", "reason-removed"],
)
def test_a_breaking_change_fails_the_check(tmp_path: Path, old: str, new: str, complaint: str) -> None:
    workspace = _copy_of_the_contract(tmp_path)
    for proto in (workspace / "protos" / "sigma" / "v1").glob("*.proto"):
        text = proto.read_text()
        if old in text:
            proto.write_text(text.replace(old, new, 1))
            break
    else:
        raise AssertionError(f"{old!r} is in no proto file")
    result = _breaking(workspace)
    assert result.returncode != 0
    assert complaint in result.stdout + result.stderr
