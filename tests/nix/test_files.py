"""Every .nix file parses, and flake.lock pins what flake.nix asks for."""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from nixcheck import NIX_ENV, REPO_ROOT

SKIP_DIRS = {"target", ".git", "node_modules"}


def nix_files() -> list[str]:
    return sorted(
        str(p.relative_to(REPO_ROOT))
        for p in REPO_ROOT.rglob("*.nix")
        if not SKIP_DIRS & set(p.relative_to(REPO_ROOT).parts)
    )


@pytest.mark.parametrize("path", nix_files())
def test_parses(path):
    p = subprocess.run(
        ["nix-instantiate", "--parse", path], cwd=REPO_ROOT, env=NIX_ENV, capture_output=True, text=True
    )
    assert p.returncode == 0, p.stderr


def test_flake_lock_pins_the_branch_flake_nix_names():
    lock = json.loads((REPO_ROOT / "flake.lock").read_text())
    flake = (REPO_ROOT / "flake.nix").read_text()
    m = re.search(r'nixpkgs\.url\s*=\s*"github:NixOS/nixpkgs/([^"]+)"', flake)
    assert m, "flake.nix: no github:NixOS/nixpkgs/<branch> input"
    node = lock["nodes"][lock["nodes"][lock["root"]]["inputs"]["nixpkgs"]]
    assert node["original"].get("ref") == m.group(1), (
        f"flake.lock pins {node['original'].get('ref')}, flake.nix asks for {m.group(1)}: run `nix flake lock`"
    )
    assert re.fullmatch(r"[0-9a-f]{40}", node["locked"]["rev"]), "flake.lock: locked rev is not a commit"
    assert re.fullmatch(r"sha256-[A-Za-z0-9+/]{43}=", node["locked"]["narHash"]), "flake.lock: narHash malformed"
