"""The Nix checks that run on a machine without nixpkgs (Debian's nix-bin and
systemd are enough), as pytest tests:

* test_files.py: every .nix file parses; flake.lock pins the branch
  flake.nix names;
* test_units.py: every unit nix/check-units.nix renders from nix/units (the
  source the modules use) scores within its exposure budget in
  ``systemd-analyze security --offline=true`` and passes
  ``systemd-analyze verify``;
* test_modules.py: with nixpkgs' lib (``NIXPKGS_LIB``, or a checkout in
  ``~/.cache/hwc-ai/nixpkgs.lib``), the module evaluation tests of
  nix/eval/tests.nix one by one, the units the modules generate for each
  example configuration scored and verified, the daemon configurations they
  render fed to the daemons' own ``--check-config``, and the option
  reference in docs/nixos.md checked against the modules. Without the lib
  they cannot run, and the summary says in one line how many did not and
  why; ``nix flake check`` runs them against real NixOS;
* test_format.py: nixfmt, where one is installed.

Run from the repository root: ``python -m pytest -q tests/nix``. The daemon
binaries for verify and ``--check-config`` come from ``HWC_BIN_DIR`` (default:
the cargo target directory's ``debug``).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import nixcheck

_eval: dict | None = None


def module_evaluation() -> dict | None:
    """nix/eval/tests.nix evaluated with nixpkgs' lib, once per session:
    ``{results, renders}``; None without the lib."""
    global _eval
    lib = nixcheck.nixpkgs_lib()
    if lib is None:
        return None
    if _eval is None:
        _eval = nixcheck.nix_json("nix/eval/tests.nix", *nixcheck.lib_arg(lib))  # type: ignore[assignment]
    return _eval


def eval_test_count() -> int:
    """How many module evaluation tests tests.nix holds; its list's length
    needs no lib."""
    return nixcheck.nix_json(
        None, expr='builtins.length (import ./nix/eval/tests.nix { lib = throw "no lib"; }).results'
    )  # type: ignore[return-value]


NO_LIB = (
    "NIXPKGS_LIB is not set and ~/.cache/hwc-ai/nixpkgs.lib holds no checkout "
    "(nixpkgs' lib is in no package registry setup.sh can install from; "
    "`nix flake check` runs them against real NixOS)"
)


# What a test that needs the lib says when skipped; the summary line says why.
NEEDS_LIB = "needs nixpkgs' lib; the `nix:` line of the summary says why it is missing"


@pytest.fixture(scope="session")
def renders(tmp_path_factory) -> Path:
    """What the module evaluation renders, as files: <config>/<unit>.service
    and <config>/<crate>.json."""
    out = module_evaluation()
    if out is None:
        pytest.skip(NEEDS_LIB)
    root = tmp_path_factory.mktemp("renders")
    for path, value in out["renders"].items():
        p = root / path
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(value if isinstance(value, str) else json.dumps(value, indent=2))
    return root


def pytest_terminal_summary(terminalreporter):
    """One line saying how many module evaluation tests did not run, and why."""
    if nixcheck.nixpkgs_lib() is None:
        try:
            n = eval_test_count()
        except nixcheck.NixError as e:
            terminalreporter.write_line(f"nix: module evaluation tests could not be counted: {e}")
            return
        terminalreporter.write_line(
            f"nix: {n} module evaluation tests did not run (nor the checks of what they render): {NO_LIB}"
        )
