"""The hwc.ai modules evaluated with nixpkgs' lib and the stand-ins of
nix/eval/stubs.nix: the tests of nix/eval/tests.nix one by one, then what
the example configurations render, checked by systemd and by the daemons
themselves, and the option reference of docs/nixos.md."""

from __future__ import annotations

import json
import os
import subprocess
from hashlib import sha256

import pytest

import nixcheck
import options_doc
from conftest import NEEDS_LIB, module_evaluation

EVAL = module_evaluation()
RESULTS = {r["name"]: r for r in EVAL["results"]} if EVAL else {}
RENDERS = sorted(EVAL["renders"]) if EVAL else []
CRATES = {d["crate"] for d in nixcheck.daemons()}
needs_lib = pytest.mark.skipif(EVAL is None, reason=NEEDS_LIB)


def test_test_names_are_unique():
    if EVAL is None:
        pytest.skip(NEEDS_LIB)
    names = [r["name"] for r in EVAL["results"]]
    assert len(names) == len(set(names)), sorted({n for n in names if names.count(n) > 1})


@needs_lib
@pytest.mark.parametrize("name", sorted(RESULTS) or ["(none)"])
def test_module_evaluation(name):
    r = RESULTS[name]
    assert r["ok"], r["detail"]


@needs_lib
@pytest.mark.parametrize("path", [p for p in RENDERS if p.endswith(".service")] or ["(none)"])
def test_generated_unit_exposure(renders, path):
    e = nixcheck.exposure(renders / path)
    budget = nixcheck.budget_of(os.path.basename(path))
    assert e.score is not None, f"systemd-analyze security gave no score:\n{e.raw}"
    assert e.score <= budget, f"{path}: exposure {e.score} over budget {budget}; what costs:\n{e.misses}"


@needs_lib
@pytest.mark.parametrize("path", [p for p in RENDERS if p.endswith(".service")] or ["(none)"])
def test_generated_unit_verify(renders, tmp_path, path):
    assert nixcheck.verify(renders / path, tmp_path) == ""


def store_commands_replaced(value):
    """The rendered settings with every `command` that names a Nix store
    path absent here (an MCP server's package) replaced by /bin/true: what
    `--check-config` is asked about is the configuration, not the package."""
    if isinstance(value, dict):
        return {
            k: "/bin/true"
            if k == "command" and isinstance(v, str) and v.startswith("/nix/store/") and not os.path.exists(v)
            else store_commands_replaced(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [store_commands_replaced(v) for v in value]
    return value


def dummy_credentials(unit_text: str, into) -> None:
    """A stand-in for every LoadCredential= of a unit: a router keys file
    for `keys`, an Ed25519 seed for the agent runner's checkpoint key, a
    token for anything else."""
    into.mkdir()
    for line in unit_text.splitlines():
        if line.startswith("LoadCredential="):
            name = line.removeprefix("LoadCredential=").split(":", 1)[0]
            if name == "keys":
                digest = sha256(b"sk-check").hexdigest()
                (into / name).write_text(f'[[keys]]\nname = "check"\nsecret_sha256 = "{digest}"\n')
            elif name == "agent-audit-key":
                (into / name).write_text(sha256(b"seed-check").hexdigest() + "\n")
            else:
                (into / name).write_text("sk-dummy\n")


@needs_lib
@pytest.mark.parametrize(
    "path",
    [p for p in RENDERS if p.endswith(".json") and os.path.basename(p)[:-5] in CRATES] or ["(none)"],
)
def test_daemon_accepts_its_rendered_config(renders, tmp_path, path):
    crate = os.path.basename(path)[:-5]
    binary = nixcheck.bin_dir() / crate
    if not binary.is_file():
        if os.environ.get("HWC_BIN_DIR"):
            pytest.fail(f"HWC_BIN_DIR has no {crate}: build every daemon (cargo build --workspace --bins)")
        pytest.skip(f"no {binary}: build it, or set HWC_BIN_DIR")
    settings = store_commands_replaced(json.loads((renders / path).read_text()))
    # A policy file the module wrote (a store path absent here) is checked
    # as rendered next to the configuration.
    policy = renders / os.path.dirname(path) / f"{crate}.policy.json"
    if policy.is_file():
        (tmp_path / "policy.toml").write_text(nixcheck.to_toml(json.loads(policy.read_text())))
        settings["policy"]["file"] = str(tmp_path / "policy.toml")
    config = tmp_path / "config.toml"
    config.write_text(nixcheck.to_toml(settings))
    unit = renders / os.path.dirname(path) / f"{crate}.service"
    dummy_credentials(unit.read_text() if unit.is_file() else "", tmp_path / "credentials")
    (tmp_path / "state").mkdir()
    env = {
        **os.environ,
        "CREDENTIALS_DIRECTORY": str(tmp_path / "credentials"),
        "STATE_DIRECTORY": str(tmp_path / "state"),
    }
    p = subprocess.run(
        [binary, "--config", config, "--check-config"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert p.returncode == 0, f"{crate} --check-config refuses {path}:\n{p.stdout}{p.stderr}\n--- rendered TOML:\n{config.read_text()}"


@needs_lib
def test_option_reference_in_docs_is_current():
    new, old = options_doc.render(nixcheck.nixpkgs_lib())
    assert new == old, "docs/nixos.md: the option reference is stale; run `python3 tests/nix/options_doc.py --write`"
