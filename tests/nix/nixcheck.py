"""What the Nix checks share: evaluating Nix to JSON, scoring and verifying
systemd units, and rendering a daemon's settings to TOML.

Everything here runs on a machine without nixpkgs: Debian's ``nix-bin``
evaluates (builtins, plus nixpkgs' ``lib`` where ``NIXPKGS_LIB`` points at a
checkout of it) and Debian's ``systemd`` scores and verifies.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import tomli_w

REPO_ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "hwc-ai"

# nix-bin on Debian runs without the nixbld group.
NIX_ENV = {**os.environ, "NIX_CONFIG": "build-users-group ="}

# Highest `systemd-analyze security` exposure a unit may score. Our daemons
# hold 1.5; runtimes are held to nixpkgs' own ollama unit (1.6), except where
# a GPU runtime needs more and says why (docs/nixos.md, "Hardening").
# The agent runner (1.1 like the prober without them) builds a bubblewrap
# sandbox inside its unit for every shell command: the namespaces that
# takes (user, mnt, pid, ipc, uts, cgroup, net) cost 0.7, bubblewrap's
# mount/capset/sethostname 0.2, the rest (its hostname, /proc, netlink, the
# journal's group) 0.1; each is commented in nix/units/agent-runner.nix and
# proven needed and enough by tests/vm (docs/nixos.md, "The units").
BUDGETS = (
    (re.compile(r"vllm-.*"), 1.6),
    (re.compile(r"llama-cpp.*"), 1.6),
    (re.compile(r"hwc-agent-runner.*"), 2.1),
    (re.compile(r".*"), 1.5),
)


def budget_of(unit: str) -> float:
    """The exposure budget of a unit file name."""
    return next(b for pattern, b in BUDGETS if pattern.fullmatch(unit))


class NixError(Exception):
    """A Nix expression did not evaluate; the message is Nix's own."""


def nix_json(path: str | Path, *args: str, expr: str | None = None) -> object:
    """`nix-instantiate --eval --strict --json` of a file (or of ``expr``),
    with ``args`` passed through (``--arg``/``--argstr``)."""
    cmd = ["nix-instantiate", "--eval", "--strict", "--json"]
    cmd += ["-E", expr] if expr is not None else [str(path)]
    cmd += list(args)
    p = subprocess.run(cmd, cwd=REPO_ROOT, env=NIX_ENV, capture_output=True, text=True)
    if p.returncode != 0:
        raise NixError(p.stderr.strip())
    return json.loads(p.stdout)


def nixpkgs_lib() -> Path | None:
    """nixpkgs' lib for the module evaluation: ``NIXPKGS_LIB``, else a
    checkout placed in the cache by hand (``~/.cache/hwc-ai/nixpkgs.lib``);
    None when there is neither."""
    env = os.environ.get("NIXPKGS_LIB")
    if env:
        return Path(env)
    cached = CACHE / "nixpkgs.lib"
    return cached if (cached / "lib" / "default.nix").is_file() else None


def lib_arg(lib: Path) -> tuple[str, str, str]:
    """The ``--arg lib`` that hands nixpkgs' lib to an expression."""
    return ("--arg", "lib", f"import {lib}/lib")


def daemons() -> list[dict]:
    """The daemon registry, nix/daemons.nix."""
    return nix_json("nix/daemons.nix")  # type: ignore[return-value]


def bin_dir() -> Path:
    """Where the cargo-built daemons are: ``HWC_BIN_DIR``, else the cargo
    target directory's ``debug``."""
    env = os.environ.get("HWC_BIN_DIR")
    if env:
        return Path(env)
    target = os.environ.get("CARGO_TARGET_DIR") or REPO_ROOT / "target"
    return Path(target) / "debug"


@dataclass
class Exposure:
    """`systemd-analyze security` of one unit file: its overall score and
    the lines of the settings that cost points."""

    score: float | None
    misses: str
    raw: str


def exposure(unit_file: Path) -> Exposure:
    """Scores ``unit_file`` offline, as systemd itself would on a host."""
    p = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", "--no-pager", str(unit_file)],
        capture_output=True,
        text=True,
    )
    out = p.stdout + p.stderr
    m = re.search(r"Overall exposure level for [^:]*: ([0-9.]+)", out)
    misses = "\n".join(line for line in out.splitlines() if "✗" in line)
    return Exposure(float(m.group(1)) if m else None, misses, out[-2000:])


def verify(unit_file: Path, work: Path) -> str:
    """`systemd-analyze verify` of a copy of ``unit_file`` in ``work``:
    its complaints, empty when there are none. Exec lines whose binary does
    not exist here (Nix store paths) get a real one: the cargo-built daemon
    of that name where there is one, else /bin/true."""
    work.mkdir(parents=True, exist_ok=True)
    bins = bin_dir()
    lines = []
    for line in unit_file.read_text().splitlines(keepends=True):
        m = re.match(r"(ExecStart|ExecStartPost|ExecReload)=(\S+)(.*)", line)
        if m and not os.path.exists(m.group(2)):
            real = bins / Path(m.group(2)).name
            line = f"{m.group(1)}={real if real.is_file() else '/bin/true'}{m.group(3)}\n"
        lines.append(line)
    copy = work / unit_file.name
    copy.write_text("".join(lines))
    p = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", f"./{copy.name}"],
        cwd=work,
        capture_output=True,
        text=True,
    )
    out = (p.stdout + p.stderr).strip()
    return out or (f"exit status {p.returncode}" if p.returncode else "")


def to_toml(settings: dict) -> str:
    """A daemon's settings as the TOML NixOS writes (pkgs.formats.toml)."""
    return tomli_w.dumps(settings)


def have(tool: str) -> bool:
    """Whether ``tool`` is on PATH."""
    return shutil.which(tool) is not None
