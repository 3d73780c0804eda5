"""Every unit of nix/units, rendered by nix/check-units.nix (builtins only,
the same source the modules use), within its exposure budget and clean
under ``systemd-analyze verify``."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import nixcheck


def rendered_units() -> dict[str, str]:
    args = ("--argstr", "binDir", str(nixcheck.bin_dir()))
    if curl := shutil.which("curl"):
        args += ("--argstr", "curlBin", curl)
    return nixcheck.nix_json("nix/check-units.nix", *args)  # type: ignore[return-value]


UNITS = rendered_units()


@pytest.fixture(scope="module")
def unit_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("units")
    for name, text in UNITS.items():
        (d / name).write_text(text)
    return d


def test_every_registry_daemon_has_a_unit():
    for d in nixcheck.daemons():
        assert d["unit"] in UNITS, f"nix/check-units.nix renders no {d['unit']} for {d['crate']}"


@pytest.mark.parametrize("name", sorted(UNITS))
def test_exposure_within_budget(unit_dir, name):
    e = nixcheck.exposure(unit_dir / name)
    budget = nixcheck.budget_of(name)
    assert e.score is not None, f"systemd-analyze security gave no score:\n{e.raw}"
    assert e.score <= budget, f"{name}: exposure {e.score} over budget {budget}; what costs:\n{e.misses}"


@pytest.mark.parametrize("name", sorted(UNITS))
def test_systemd_analyze_verify(unit_dir, tmp_path, name):
    assert nixcheck.verify(unit_dir / name, tmp_path) == ""
