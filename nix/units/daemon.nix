# The systemd unit of an hwc-ai daemon, as plain data: `{ unitConfig;
# serviceConfig; }` in the shape of NixOS's `systemd.services.<name>`.
#
# Builtins only (no nixpkgs, no lib): the NixOS modules (../../modules) and
# the checks that run without nixpkgs (tests/nix, tests/vm) call
# this same function, so what is scored and booted there is what a NixOS host
# runs.
#
# Every daemon: Type=notify (READY=1 once it listens), a watchdog it pets
# while its own health holds, restart on failure with a start limit, a
# DynamicUser (or a fixed user where polkit must name it), its state under
# /var/lib/hwc-ai/<daemon>, secrets through LoadCredential, and the hardening
# baseline of ../hardening.nix.
{
  # Human-readable description (Description=).
  description,
  # Full command line. Store paths only; no shell.
  execStart,
  # `systemctl reload` command (ExecReload=), or null for none.
  execReload ? null,
  # Directory under /var/lib, e.g. "hwc-ai/router" ($STATE_DIRECTORY).
  stateDirectory,
  # Credential name -> absolute path of the secret on the host. The daemon
  # reads "$CREDENTIALS_DIRECTORY/<name>"; its config names only <name>.
  credentials ? { },
  # Seconds without WATCHDOG=1 before systemd kills and restarts the daemon.
  watchdogSec ? 30,
  # Bound on a stop (SIGTERM, drain, exit). Must exceed the daemon's own
  # drain timeout (`server.drain_timeout`, 30 s by default).
  stopTimeoutSec ? 45,
  # null: DynamicUser. A name: that fixed system user and group (only where
  # another component, e.g. a polkit rule, must name the identity).
  user ? null,
  # null: no IP filter. A list: IPAddressDeny=any plus IPAddressAllow= these
  # (e.g. [ "localhost" ] for a daemon whose peers are all on loopback).
  ipAddressAllow ? null,
  # Per-daemon changes to the baseline. Whoever passes one documents why at
  # the call site.
  relaxations ? { },
}:
let
  hardening = import ../hardening.nix;
  credentialLines = map (name: "${name}:${credentials.${name}}") (builtins.attrNames credentials);
  identity =
    if user == null then
      { DynamicUser = true; }
    else
      {
        # A fixed identity: polkit rules match on the user name.
        DynamicUser = false;
        User = user;
        Group = user;
      };
  ipFilter =
    if ipAddressAllow == null then
      { }
    else
      {
        IPAddressDeny = "any";
        IPAddressAllow = ipAddressAllow;
      };
in
{
  unitConfig = {
    Description = description;
    # At most 5 starts in 5 minutes; past that the unit stays failed and
    # the operator (or the health prober) sees why instead of a tight loop.
    StartLimitIntervalSec = 300;
    StartLimitBurst = 5;
  };
  serviceConfig =
    hardening
    // identity
    // ipFilter
    // {
      Type = "notify";
      # Only the main process may send READY=1/WATCHDOG=1/STATUS=.
      NotifyAccess = "main";
      ExecStart = execStart;
      WatchdogSec = watchdogSec;
      Restart = "on-failure";
      RestartSec = 2;
      TimeoutStartSec = 60;
      TimeoutStopSec = stopTimeoutSec;
      StateDirectory = stateDirectory;
      StateDirectoryMode = "0700";
      LoadCredential = credentialLines;
    }
    // (if execReload == null then { } else { ExecReload = execReload; })
    // relaxations;
}
