"""nixfmt style on every .nix file, where a nixfmt is installed."""

from __future__ import annotations

import subprocess

import pytest

import nixcheck
from test_files import nix_files


@pytest.mark.skipif(
    not nixcheck.have("nixfmt"),
    reason="no nixfmt here: it is in neither Debian 12, PyPI nor npm; `nix fmt` and the flake's formatting check run it",
)
def test_nixfmt():
    p = subprocess.run(["nixfmt", "--check", *nix_files()], cwd=nixcheck.REPO_ROOT, capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr
