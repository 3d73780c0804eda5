#!/usr/bin/env bash
# The real-systemd tier: boots a throwaway Debian root of the host's own
# release (bookworm on Debian 12, trixie on Debian 13) with systemd as PID 1 (systemd-nspawn, on this machine's kernel), installs the
# hwc-ai daemons with their units rendered from the same Nix source the NixOS
# modules use (tests/vm/units.nix -> nix/units), and runs tests/vm/guest.sh
# inside: hardening holds, READY and the watchdog work, SIGTERM is clean, a
# killed daemon comes back, the prober's polkit rule allows exactly its own
# restarts; the agent runner's shell sandbox (bubblewrap) runs nested in its
# unit and each of its tools works as far as the unit and polkit allow.
#
#   HWC_BIN_DIR=target/debug tests/vm/run.sh
#
# Environment:
#   HWC_BIN_DIR      the directory with the cargo-built daemons (required):
#                    every daemon of nix/daemons.nix must be there
#   LLAMA_SERVER, HWC_TEST_MODEL
#                    a llama-server and a GGUF (scripts/test-runtime.sh); when
#                    given, a chat completion goes through the router
#   HWC_VM_TIMEOUT   seconds for the whole boot and test (default 300)
#   HWC_VM_SUITE     the Debian suite of the guest (default: the host's own,
#                    VERSION_CODENAME in /etc/os-release)
#   HWC_VM_GUEST     the script the guest runs instead of tests/vm/guest.sh
#                    (scripts/demo.sh runs the agent demo this way)
#   HWC_VM_SHARE     a host directory bound read-write at /hwc-demo
# The guest runs binaries built on the host (the daemons, llama-server), so it
# must have the host's glibc and libstdc++: a guest older than the host fails
# to load them. Hence the host's own release, not a fixed one. Supported
# hosts: Debian 12 (bookworm) and 13 (trixie); another Debian-like host works
# if debootstrap knows its codename (set HWC_VM_SUITE otherwise).
# The root file system is built once per suite (debootstrap, about a minute)
# and cached under ${XDG_CACHE_HOME:-$HOME/.cache}/hwc-ai/vm/<suite>; every
# run boots it with --volatile=overlay, so it stays pristine. Needs root.
set -euo pipefail
cd "$(dirname "$0")/../.."
here=tests/vm
host_suite() {
  # shellcheck disable=SC1091
  (. /etc/os-release 2>/dev/null && printf '%s' "${VERSION_CODENAME:-}")
}
suite=${HWC_VM_SUITE:-$(host_suite)}
[[ -n $suite ]] || {
  printf 'tests/vm: cannot tell the host release (no VERSION_CODENAME in /etc/os-release); set HWC_VM_SUITE=bookworm or trixie\n' >&2
  exit 2
}
cache="${XDG_CACHE_HOME:-$HOME/.cache}/hwc-ai/vm/$suite"
rootfs="$cache/rootfs"
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
# Kept in the stamp: change the list or the setup below and the root is rebuilt.
packages=systemd,systemd-sysv,dbus,libnss-systemd,libpam-systemd,polkitd,curl,procps,python3,iproute2,libstdc++6,libgomp1,bubblewrap,git
export NIX_CONFIG="build-users-group ="

log() { printf 'tests/vm: %s\n' "$*" >&2; }
die() {
  log "$*"
  exit 2
}
now() { date +%s.%N; }
since() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f} s')" "$1" "$(now)"; }

[[ $(id -u) -eq 0 ]] || die "needs root (debootstrap, systemd-nspawn)"
bin_dir=${HWC_BIN_DIR:?set HWC_BIN_DIR to the directory of the cargo-built daemons (target/debug)}
bin_dir=$(realpath "$bin_dir")
# The daemons, from the one registry (nix/daemons.nix): crate and unit.
mapfile -t crates < <(nix-instantiate --eval --strict --json nix/daemons.nix |
  python3 -c 'import json, sys; print("\n".join(d["crate"] for d in json.load(sys.stdin)))')
((${#crates[@]})) || die "nix/daemons.nix lists no daemon"
for crate in "${crates[@]}"; do
  [[ -x $bin_dir/$crate ]] || die "$bin_dir/$crate is missing: build every daemon first (cargo build --workspace)"
done

t_all=$(now)

# --- tools ------------------------------------------------------------------
missing=()
command -v debootstrap >/dev/null || missing+=(debootstrap)
command -v systemd-nspawn >/dev/null || missing+=(systemd-container)
command -v nix-instantiate >/dev/null || missing+=(nix-bin)
if ((${#missing[@]})); then
  log "installing ${missing[*]}"
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

# --- the root file system (once) ------------------------------------------
configure_rootfs() {
  local r=$1
  echo hwc-vmtest >"$r/etc/hostname"
  printf '127.0.0.1 localhost\n127.0.1.1 hwc-vmtest\n' >"$r/etc/hosts"
  chroot "$r" passwd -dq root
  # Nothing that slows the boot or waits for a terminal.
  chroot "$r" systemctl mask -q console-getty.service getty@tty1.service \
    apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer e2scrub_all.timer \
    e2scrub_reap.service fstrim.timer systemd-networkd-wait-online.service
  cat >"$r/usr/local/sbin/hwc-vmtest-run" <<'EOF'
#!/bin/bash
# Runs /hwc-vmtest/guest.sh once the system is up, then powers off.
exec >/dev/console 2>&1
state=$(systemctl is-system-running --wait)
# Seconds since PID 1 started (the container shares the host's uptime clock).
booted=$(awk -v hz="$(getconf CLK_TCK)" 'NR == FNR { up = $1; next } { printf "%.2f", up - $22 / hz }' /proc/uptime /proc/1/stat)
echo "HWC-VMTEST-BOOTED state=$state after=${booted}s"
[[ $state == running ]] || systemctl --failed --no-legend | sed 's/^/HWC-VMTEST-FAILED-UNIT /'
bash /hwc-vmtest/guest.sh
rc=$?
echo "HWC-VMTEST-RESULT rc=$rc"
systemctl poweroff --force --force
EOF
  chmod 0755 "$r/usr/local/sbin/hwc-vmtest-run"
  # Type=exec: a oneshot here would deadlock is-system-running --wait.
  cat >"$r/etc/systemd/system/hwc-vmtest.service" <<'EOF'
[Unit]
Description=hwc-ai real-systemd tests
ConditionPathExists=/hwc-vmtest/guest.sh
After=multi-user.target
[Service]
Type=exec
ExecStart=/usr/local/sbin/hwc-vmtest-run
StandardInput=null
[Install]
WantedBy=multi-user.target
EOF
  chroot "$r" systemctl enable -q hwc-vmtest.service
  rm -rf "$r"/var/cache/apt/archives/*.deb "$r"/var/lib/apt/lists/*
}

stamp=$(printf '%s\n%s\n%s\n' "$suite" "$packages" "$(declare -f configure_rootfs)" | sha256sum | cut -d' ' -f1)
if [[ ! -x $rootfs/bin/systemctl || "$(cat "$cache/rootfs.stamp" 2>/dev/null)" != "$stamp" ]]; then
  t=$(now)
  log "building the Debian $suite root, the host's release (debootstrap, about a minute)"
  mkdir -p "$cache"
  rm -rf "$rootfs" "$rootfs.tmp"
  # The layout before roots were kept per suite.
  rm -rf "$cache/../rootfs" "$cache/../rootfs.stamp" "$cache/../debootstrap.log"
  debootstrap --variant=minbase --include="$packages" "$suite" "$rootfs.tmp" "$mirror" >"$cache/debootstrap.log" 2>&1 ||
    die "debootstrap failed; see $cache/debootstrap.log"
  configure_rootfs "$rootfs.tmp"
  mv "$rootfs.tmp" "$rootfs"
  echo "$stamp" >"$cache/rootfs.stamp"
  log "root file system ready in $(since "$t")"
fi

# --- what the guest gets -------------------------------------------------------
work=$(mktemp -d "${TMPDIR:-/tmp}/hwc-vmtest.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/units"
nix-instantiate --eval --strict --json "$here/units.nix" |
  python3 -c 'import json, sys
for name, text in json.load(sys.stdin).items():
    open(sys.argv[1] + "/" + name, "w").write(text)' "$work/units"
nix-instantiate --eval --strict --json nix/daemons.nix >"$work/daemons.json"
cp "${HWC_VM_GUEST:-$here/guest.sh}" "$work/guest.sh"
# The eval scenarios that need systemd as PID 1 (docs/eval.md).
cp -r crates/hwc-agent-runner/eval/scenarios-vm "$work/eval-scenarios"
cp "$here/router-keys.toml" crates/hwc-mcp-bridge/tests/fixtures/fault_server.py \
  "$here/hwc-agent-policy.toml" "$here/scripted_model.py" "$work/"
binds=(--bind-ro="$work:/hwc-vmtest")
[[ -n ${HWC_VM_SHARE:-} ]] && binds+=(--bind="$(realpath "$HWC_VM_SHARE"):/hwc-demo")
for crate in "${crates[@]}"; do
  cp "$here/$crate.toml" "$work/"
  binds+=(--bind-ro="$bin_dir/$crate:/opt/hwc-ai/bin/$crate")
done
if [[ -n ${LLAMA_SERVER:-} && -x ${LLAMA_SERVER:-} && -s ${HWC_TEST_MODEL:-} ]]; then
  binds+=(--bind-ro="$(dirname "$(realpath "$LLAMA_SERVER")"):/opt/llama/bin"
    --bind-ro="$(realpath "$HWC_TEST_MODEL"):/opt/llama/model.gguf")
fi

# --- boot and test -------------------------------------------------------------
log "booting Debian $suite (systemd-nspawn -b) with ${crates[*]} from $bin_dir"
t=$(now)
set +e
# --register=no --keep-unit: the host's PID 1 is not systemd (no machined,
# no system bus). --volatile=overlay: writes go to a tmpfs, the root stays
# as built. --private-network: loopback only.
timeout "${HWC_VM_TIMEOUT:-300}" systemd-nspawn -q -b -D "$rootfs" --volatile=overlay \
  --register=no --keep-unit --private-network "${binds[@]}" \
  -- systemd.show_status=error </dev/null 2>&1 |
  grep -a -v -e 'Failed to create symlink /sys/fs/cgroup' -e 'remove disk file system under' |
  tee "$work/console.log"
set -e
rc=$(sed -n 's/^HWC-VMTEST-RESULT rc=\([0-9]*\).*/\1/p' "$work/console.log")
booted=$(sed -n 's/^HWC-VMTEST-BOOTED .*after=\([0-9.]*\)s.*/\1/p' "$work/console.log")
log "guest booted in ${booted:-?} s; boot + tests took $(since "$t"); whole run $(since "$t_all")"
if [[ -z $rc ]]; then
  log "FAILED: the guest never reported a result (crash or timeout)"
  exit 1
fi
if [[ $rc != 0 ]]; then
  log "FAILED: $(grep -c '^FAIL:' "$work/console.log") checks failed in the guest"
  exit 1
fi
log "OK: $(grep -c '^PASS:' "$work/console.log") checks passed in the guest"
