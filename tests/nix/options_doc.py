"""The option reference in docs/nixos.md, generated from the modules' own
declarations (nix/options-doc.nix, nixpkgs' lib needed).

    python3 tests/nix/options_doc.py --write   # rewrite it
    python3 tests/nix/options_doc.py           # exit 1 if it is stale

test_modules.py runs the check.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nixcheck

DOC = nixcheck.REPO_ROOT / "docs" / "nixos.md"
BEGIN = "<!-- BEGIN GENERATED OPTIONS: python3 tests/nix/options_doc.py --write -->"
END = "<!-- END GENERATED OPTIONS -->"


def render(lib: Path) -> tuple[str, str]:
    """(docs/nixos.md with a freshly generated reference, docs/nixos.md now)."""
    generated = nixcheck.nix_json("nix/options-doc.nix", *nixcheck.lib_arg(lib))
    text = DOC.read_text()
    head, sep, rest = text.partition(BEGIN)
    if not sep:
        raise SystemExit(f"{DOC}: no line {BEGIN!r} to put the reference after")
    _, sep, tail = rest.partition(END)
    if not sep:
        raise SystemExit(f"{DOC}: no line {END!r} after {BEGIN!r}")
    return head + BEGIN + "\n\n" + str(generated).rstrip() + "\n\n" + END + tail, text


def main(argv: list[str]) -> int:
    lib = nixcheck.nixpkgs_lib()
    if lib is None:
        print("options_doc: needs nixpkgs' lib: set NIXPKGS_LIB to a checkout of nix-community/nixpkgs.lib", file=sys.stderr)
        return 2
    new, old = render(lib)
    if argv[1:] == ["--write"]:
        DOC.write_text(new)
        print(f"{DOC.relative_to(nixcheck.REPO_ROOT)}: option reference rewritten")
        return 0
    if new != old:
        print(f"{DOC}: the option reference is stale; run python3 tests/nix/options_doc.py --write")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
