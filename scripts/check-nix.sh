#!/usr/bin/env bash
# Every Nix check that runs on a machine without nixpkgs (Debian's nix-bin
# and systemd are enough):
#
#   1. every .nix file parses (nix-instantiate --parse), and flake.lock pins
#      the nixpkgs branch flake.nix names;
#   2. every unit this repository defines, rendered from the same Nix source
#      the modules use (nix/units, builtins only), scores at most 1.5 in
#      `systemd-analyze security --offline=true` (vLLM, a runtime: at most
#      1.6, nixpkgs' ollama unit) and passes `systemd-analyze verify`;
#   3. with NIXPKGS_LIB set (a checkout of nixpkgs' lib, e.g.
#      nix-community/nixpkgs.lib): the module evaluation tests
#      (nix/eval/tests.nix: profiles, machines, generated units and
#      configurations, assertions), the units the modules generate for each
#      example machine scored and verified like (2), and the daemon
#      configurations they render fed to the daemons' own --check-config;
#      without it, that part is skipped and the run says so;
#   4. formatting with nixfmt, where a nixfmt is installed.
#
#   --write-options-doc  regenerate the option reference in docs/nixos.md
#                        (needs NIXPKGS_LIB) and exit.
#
# Environment: NIXPKGS_LIB (see 3); HWC_ROUTER_BIN, HWC_PROBER_BIN (daemon
# binaries for verify and --check-config; default: the cargo target dir,
# else stand-ins for verify and no --check-config).
# Exit status 0 only if every check that ran passed.
set -uo pipefail
cd "$(dirname "$0")/.."
export NIX_CONFIG="build-users-group ="

pass=0
fail=0
failed=()
skipped=()
ok() {
  printf '  ok    %s\n' "$1"
  pass=$((pass + 1))
}
bad() {
  printf '  FAIL  %s\n' "$1"
  [[ -n "${2:-}" ]] && printf '%s\n' "$2" | sed 's/^/        /'
  fail=$((fail + 1))
  failed+=("$1")
}
skip() {
  printf '  skip  %s\n' "$1"
  skipped+=("$1")
}
step() { printf '\n== %s\n' "$*"; }

need_tools() {
  local missing=()
  command -v nix-instantiate >/dev/null || missing+=(nix-bin)
  command -v systemd-analyze >/dev/null || missing+=(systemd)
  if ((${#missing[@]})); then
    echo "check-nix: installing ${missing[*]}" >&2
    local sudo_=""
    [[ $(id -u) -eq 0 ]] || sudo_=sudo
    $sudo_ apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
  fi
}
need_tools

work=$(mktemp -d "${TMPDIR:-/tmp}/hwc-ai-check-nix.XXXXXX")
trap 'rm -rf "$work"' EXIT

# options_doc MODE: MODE=check compares the generated option reference with
# the one in docs/nixos.md; MODE=write replaces it.
options_doc() {
  local json
  json=$(nix-instantiate --eval --strict --json nix/options-doc.nix --arg lib "import $NIXPKGS_LIB/lib" 2>&1) || {
    echo "$json"
    return 1
  }
  python3 - "$1" "$json" <<'EOF'
import json, sys
mode, doc = sys.argv[1], json.loads(sys.argv[2])
path = "docs/nixos.md"
begin = "<!-- BEGIN GENERATED OPTIONS: scripts/check-nix.sh --write-options-doc -->"
end = "<!-- END GENERATED OPTIONS -->"
text = open(path).read()
head, rest = text.split(begin, 1)
_, tail = rest.split(end, 1)
new = head + begin + "\n\n" + doc.rstrip() + "\n\n" + end + tail
if mode == "write":
    open(path, "w").write(new)
    print(f"{path}: option reference rewritten")
elif new != text:
    print(f"{path}: the option reference is stale; run NIXPKGS_LIB=... scripts/check-nix.sh --write-options-doc")
    sys.exit(1)
EOF
}
if [[ ${1:-} == --write-options-doc ]]; then
  [[ -n ${NIXPKGS_LIB:-} ]] || {
    echo "--write-options-doc needs NIXPKGS_LIB" >&2
    exit 2
  }
  options_doc write
  exit
fi

target_dir=${CARGO_TARGET_DIR:-target}
router_bin=${HWC_ROUTER_BIN:-$target_dir/debug/hwc-model-router}
prober_bin=${HWC_PROBER_BIN:-$target_dir/debug/hwc-health-prober}
[[ -x "$router_bin" ]] && router_bin=$(realpath "$router_bin") || router_bin=""
[[ -x "$prober_bin" ]] && prober_bin=$(realpath "$prober_bin") || prober_bin=""
manager_bin=${HWC_MANAGER_BIN:-$target_dir/debug/hwc-model-manager}
[[ -x "$manager_bin" ]] && manager_bin=$(realpath "$manager_bin") || manager_bin=""

# ---------------------------------------------------------------------------
step "1. parse every .nix file"
mapfile -t nix_files < <(find . -name '*.nix' -not -path './target/*' -not -path './.git/*' \
  -not -path '*/node_modules/*' -not -path './fuzz/target/*' | sort)
parse_fail=0
for f in "${nix_files[@]}"; do
  if ! out=$(nix-instantiate --parse "$f" 2>&1 >/dev/null); then
    bad "parse $f" "$out"
    parse_fail=1
  fi
done
((parse_fail)) || ok "${#nix_files[@]} files parse"

if out=$(python3 - <<'EOF' 2>&1
import json, re, sys
lock = json.load(open("flake.lock"))
flake = open("flake.nix").read()
m = re.search(r'nixpkgs\.url\s*=\s*"github:NixOS/nixpkgs/([^"]+)"', flake)
assert m, "flake.nix: no github:NixOS/nixpkgs/<branch> input"
node = lock["nodes"][lock["nodes"][lock["root"]]["inputs"]["nixpkgs"]]
assert node["original"].get("ref") == m.group(1), f'flake.lock pins {node["original"].get("ref")}, flake.nix asks for {m.group(1)}'
assert re.fullmatch(r"[0-9a-f]{40}", node["locked"]["rev"]), "locked rev is not a commit"
assert re.fullmatch(r"sha256-[A-Za-z0-9+/]{43}=", node["locked"]["narHash"]), "narHash malformed"
print(f'nixpkgs {m.group(1)} at {node["locked"]["rev"][:12]}')
EOF
); then
  ok "flake.lock: $out"
else
  bad "flake.lock matches flake.nix" "$out"
fi

# ---------------------------------------------------------------------------
# score_and_verify DIR: every *.service in DIR, exposure within budget and
# `systemd-analyze verify` silent. ExecStart binaries that do not exist on
# this machine (store paths) are replaced by real ones for verify only.
score_and_verify() {
  local dir=$1 label=$2 f name budget line score vf out
  for f in "$dir"/*.service; do
    [[ -e "$f" ]] || continue
    name=$(basename "$f")
    budget=1.5
    [[ $name == vllm-* ]] && budget=1.6
    line=$(systemd-analyze security --offline=true --no-pager "$f" 2>&1 | grep 'Overall exposure level' || true)
    score=$(sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p' <<<"$line")
    if [[ -z "$score" ]]; then
      bad "$label $name: security" "$(systemd-analyze security --offline=true --no-pager "$f" 2>&1 | tail -5)"
    elif python3 -c "import sys; sys.exit(0 if float('$score') <= $budget else 1)"; then
      ok "$label $name: exposure $score (budget $budget)"
    else
      bad "$label $name: exposure $score over budget $budget" \
        "$(systemd-analyze security --offline=true --no-pager "$f" 2>&1 | grep '✗')"
    fi
    vf="$dir/verify/$name"
    mkdir -p "$dir/verify"
    ROUTER="$router_bin" python3 - "$f" "$vf" <<'EOF'
import os, re, sys
src, dst = sys.argv[1], sys.argv[2]
router = os.environ.get("ROUTER") or "/bin/true"
out = []
for line in open(src):
    m = re.match(r"(ExecStart|ExecStartPost|ExecReload)=(\S+)(.*)", line)
    if m and not os.path.exists(m.group(2)):
        real = router if m.group(2).endswith("/hwc-model-router") else "/bin/true"
        line = f"{m.group(1)}={real}{m.group(3)}\n"
    out.append(line)
open(dst, "w").write("".join(out))
EOF
    if out=$(cd "$dir/verify" && systemd-analyze verify --man=no "./$name" 2>&1) && [[ -z "$out" ]]; then
      ok "$label $name: systemd-analyze verify"
    else
      bad "$label $name: systemd-analyze verify" "$out"
    fi
  done
}

step "2. units rendered from nix/units (builtins only), scored and verified"
mkdir -p "$work/units"
if json=$(nix-instantiate --eval --strict --json nix/check-units.nix \
  --argstr routerBin "${router_bin:-/bin/true}" --argstr curlBin "$(command -v curl || echo /bin/true)" 2>&1); then
  python3 -c '
import json, sys
for name, text in json.loads(sys.argv[1]).items():
    open(sys.argv[2] + "/" + name, "w").write(text)
' "$json" "$work/units"
  [[ -n "$router_bin" ]] || echo "  (no cargo-built router: verify runs against /bin/true)"
  score_and_verify "$work/units" "nix/units"
else
  bad "render nix/check-units.nix" "$json"
fi

# ---------------------------------------------------------------------------
# toml FILE.json > FILE.toml: what pkgs.formats.toml does (json2toml).
json2toml() {
  python3 - "$1" <<'EOF'
import json, re, sys
def key(k): return k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else json.dumps(k)
def val(v):
    if isinstance(v, bool): return "true" if v else "false"
    if isinstance(v, (int, float)): return repr(v)
    if isinstance(v, str): return json.dumps(v)
    if isinstance(v, list): return "[" + ", ".join(val(x) for x in v) + "]"
    if isinstance(v, dict): return "{ " + ", ".join(f"{key(k)} = {val(x)}" for k, x in v.items()) + " }"
    raise TypeError(v)
def is_table(v): return isinstance(v, dict)
def is_aot(v): return isinstance(v, list) and v and all(isinstance(x, dict) for x in v)
def emit(d, path, out):
    for k, v in d.items():
        if not is_table(v) and not is_aot(v):
            out.append(f"{key(k)} = {val(v)}")
    for k, v in d.items():
        p = path + [key(k)]
        if is_table(v):
            out.append(f"\n[{'.'.join(p)}]")
            emit(v, p, out)
        elif is_aot(v):
            for x in v:
                out.append(f"\n[[{'.'.join(p)}]]")
                emit(x, p, out)
out = []
emit(json.load(open(sys.argv[1])), [], out)
print("\n".join(out).lstrip())
EOF
}

# check_config BIN JSON UNIT: run BIN --config <JSON as TOML> --check-config
# with the unit's credentials (dummies) in $CREDENTIALS_DIRECTORY.
check_config() {
  local bin=$1 json=$2 unit=$3 d out
  d=$(mktemp -d "$work/cred.XXXX")
  json2toml "$json" >"$d/config.toml"
  mkdir -p "$d/credentials" "$d/state"
  for cred in $(sed -n 's/^LoadCredential=\([^:]*\):.*/\1/p' "$unit" 2>/dev/null); do
    if [[ $cred == keys ]]; then
      printf '[[keys]]\nname = "check"\nsecret_sha256 = "%s"\n' "$(printf %s sk-check | sha256sum | cut -d' ' -f1)" >"$d/credentials/$cred"
    else
      printf 'sk-dummy\n' >"$d/credentials/$cred"
    fi
  done
  if out=$(cd "$d" && CREDENTIALS_DIRECTORY="$d/credentials" STATE_DIRECTORY="$d/state" "$bin" --config "$d/config.toml" --check-config 2>&1); then
    ok "$(basename "$bin") --check-config accepts ${json#"$work/eval/"}"
  else
    bad "$(basename "$bin") --check-config rejects ${json#"$work/eval/"}" "$out
--- rendered TOML:
$(cat "$d/config.toml")"
  fi
}

step "3. module evaluation (nixpkgs lib + stand-ins of the nixpkgs modules)"
if [[ -z "${NIXPKGS_LIB:-}" ]]; then
  echo "  module evaluation SKIPPED: NIXPKGS_LIB not set"
  echo "  (set it to a checkout of nix-community/nixpkgs.lib or nixpkgs, the directory that holds lib/)"
  skipped+=("module evaluation (NIXPKGS_LIB not set)")
elif [[ ! -f "$NIXPKGS_LIB/lib/default.nix" ]]; then
  bad "NIXPKGS_LIB=$NIXPKGS_LIB has no lib/default.nix"
else
  echo "  nixpkgs lib: $NIXPKGS_LIB ($(nix-instantiate --eval -E "(import $NIXPKGS_LIB/lib).version" 2>/dev/null))"
  if json=$(nix-instantiate --eval --strict --json nix/eval/tests.nix --arg lib "import $NIXPKGS_LIB/lib" 2>&1); then
    mkdir -p "$work/eval"
    printf '%s' "$json" >"$work/eval/out.json"
    while IFS=$'\t' read -r status name detail; do
      if [[ $status == ok ]]; then ok "$name"; else bad "$name" "$(printf '%b' "$detail")"; fi
    done < <(python3 - "$work/eval/out.json" "$work/eval" <<'EOF'
import json, os, sys
d = json.load(open(sys.argv[1]))
for r in d["results"]:
    detail = r["detail"].replace("\\", "\\\\").replace("\n", "\\n").replace("\t", " ")
    print(("ok" if r["ok"] else "fail") + "\t" + r["name"] + "\t" + detail)
for path, value in d["renders"].items():
    p = os.path.join(sys.argv[2], path)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, "w") as f:
        f.write(value if isinstance(value, str) else json.dumps(value, indent=2))
EOF
)
    step "3b. units the modules generate for each example configuration"
    for dir in "$work"/eval/*/; do
      score_and_verify "${dir%/}" "$(basename "$dir")"
    done
    step "3c. configurations the modules render, checked by the daemons themselves"
    for entry in "hwc-model-router:$router_bin:HWC_ROUTER_BIN" \
      "hwc-health-prober:$prober_bin:HWC_PROBER_BIN" \
      "hwc-model-manager:$manager_bin:HWC_MANAGER_BIN"; do
      IFS=: read -r daemon bin var <<<"$entry"
      for json in "$work"/eval/*/"$daemon.json"; do
        [[ -e "$json" ]] || continue
        if [[ -n "$bin" ]]; then
          check_config "$bin" "$json" "$(dirname "$json")/$daemon.service"
        else
          skip "$daemon --check-config ${json#"$work/eval/"} (no binary; set $var)"
        fi
      done
    done
    step "3d. the option reference in docs/nixos.md matches the modules"
    if out=$(options_doc check 2>&1); then
      ok "docs/nixos.md option reference is current"
    else
      bad "docs/nixos.md option reference" "$out"
    fi
  else
    bad "nix/eval/tests.nix evaluates" "$json"
  fi
fi

# ---------------------------------------------------------------------------
step "4. formatting (nixfmt)"
if command -v nixfmt >/dev/null; then
  if out=$(nixfmt --check "${nix_files[@]}" 2>&1); then
    ok "nixfmt --check: ${#nix_files[@]} files"
  else
    bad "nixfmt --check" "$out"
  fi
else
  skip "nixfmt --check (no nixfmt here: it is in neither Debian bookworm, PyPI nor npm; 'nix fmt' and the flake's formatting check run it where Nix can build)"
fi

# ---------------------------------------------------------------------------
printf '\n== summary: %d passed, %d failed, %d skipped\n' "$pass" "$fail" "${#skipped[@]}"
for s in "${skipped[@]}"; do printf '  skipped: %s\n' "$s"; done
for f in "${failed[@]}"; do printf '  FAILED:  %s\n' "$f"; done
((fail == 0))
