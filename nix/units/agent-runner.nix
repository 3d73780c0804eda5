# The hwc-agent-runner unit, as plain data (builtins only). Used by
# modules/agent-runner.nix and by the checks that run without nixpkgs.
#
# The runner acts on the host for its jobs: host commands (systemctl status,
# journalctl, df, ss, ps) run inside this unit's sandbox, unit control goes
# over D-Bus and is granted by polkit (modules/agent-runner.nix), git works
# in worktrees under the state directory, and every shell command runs in a
# bubblewrap sandbox (crates/hwc-agent-runner/src/sandbox.rs) nested inside
# this unit: new user, mount, PID, IPC, UTS, cgroup and (unless its rule
# grants the network) network namespaces, a read-only root, the workspace
# the only writable path. The relaxations below are what that nesting needs
# and nothing more; without them bubblewrap fails and the runner refuses
# every shell command (it fails closed and says why in /status).
{
  # Path of the daemon's binary.
  bin,
  configFile,
  credentials ? { },
  # The fixed system user the polkit rule names (modules/agent-runner.nix).
  user ? "hwc-ai-agent",
  # The repositories jobs work on (`[tools] repositories`): git adds its
  # worktrees under each one's .git, so they are writable (ReadWritePaths=).
  repositories ? [ ],
  # kill(1) for ExecReload (a store path on NixOS; Debian's util-linux one
  # for the checks and tests/vm).
  killBin ? "/bin/kill",
  # `server.drain_timeout` in seconds; the stop timeout leaves room above it.
  drainTimeoutSec ? 30,
  # null: no IP filter; a list: IPAddressDeny=any plus these (the module
  # computes it when every peer is known by address).
  ipAddressAllow ? null,
}:
let
  underHome = builtins.any (p: builtins.match "/(home|root|run/user)(/.*)?" p != null) repositories;
in
import ./daemon.nix {
  description = "hwc-ai agent runner (operations agent gated by the R0-R3 policy)";
  execStart = "${bin} --config ${configFile}";
  # `systemctl reload`: SIGHUP re-reads the tokens and the policy (a policy
  # that does not load is refused and the one in force stays).
  execReload = "${killBin} -HUP $MAINPID";
  stateDirectory = "hwc-ai/agent-runner";
  # Unit control goes through systemd's D-Bus API and polkit decides by the
  # caller's user name: a DynamicUser has no stable name to grant
  # org.freedesktop.systemd1.manage-units to, so the runner runs as a fixed
  # system user (as the health prober does). It still holds no capability.
  inherit credentials user ipAddressAllow;
  watchdogSec = 30;
  # A stop drains (jobs are left resumable) and kills every sandbox's group.
  stopTimeoutSec = drainTimeoutSec + 15;
  relaxations = {
    # bubblewrap makes the sandbox out of namespaces it creates itself,
    # unprivileged, inside the unit's own user namespace (PrivateUsers=
    # stays on: nesting needs nothing more of it): `--unshare-user` (user,
    # which implies mnt for its --ro-bind, --proc, --tmpfs), `--unshare-pid`,
    # `--unshare-ipc`, `--unshare-uts`, `--unshare-cgroup-try` and, unless
    # the policy grants the network, `--unshare-net`. Only `time` stays
    # denied.
    RestrictNamespaces = "cgroup ipc mnt net pid user uts";
    # What bubblewrap calls to build the sandbox, on top of the baseline
    # (which still denies the rest of @privileged and @resources):
    #   @mount       mount, umount2, pivot_root (the new root, /proc, /dev,
    #                /tmp): only effective in a mount namespace of a user
    #                namespace the runner owns, never on the host's mounts;
    #   capset       `--cap-drop ALL` (dropping, within an empty bounding set);
    #   sethostname  `--hostname` in the sandbox's own UTS namespace (the
    #                host's hostname needs CAP_SYS_ADMIN, which is not held).
    SystemCallFilter = [
      "@system-service"
      "~@privileged"
      "~@resources"
      "@mount"
      "capset"
      "sethostname"
    ];
    # ProtectHostname=yes denies sethostname by seccomp even in a UTS
    # namespace of the unit's own, which the sandbox's `--hostname` needs.
    # The host's hostname stays out of reach: setting it needs CAP_SYS_ADMIN
    # in the host's namespaces, and no capability is held (nor gained:
    # NoNewPrivileges).
    ProtectHostname = false;
    # bubblewrap reads /proc/sys/kernel/overflowuid and overflowgid to map
    # the sandbox's user, which ProcSubset=pid hides; `free` and `uptime`
    # (host facts) read /proc/meminfo and /proc/uptime. /proc stays
    # read-only where the kernel's tunables are (ProtectKernelTunables) and
    # other users' processes stay invisible (ProtectProc=invisible).
    ProcSubset = "all";
    # Netlink: bubblewrap brings up the loopback interface of a sandbox's
    # new network namespace over NETLINK_ROUTE, and `ss` (host facts:
    # sockets) lists sockets over NETLINK_SOCK_DIAG. No packet or other
    # families.
    RestrictAddressFamilies = [
      "AF_INET"
      "AF_INET6"
      "AF_UNIX"
      "AF_NETLINK"
    ];
    # The journal tool (journalctl -u UNIT) reads the system journal, which
    # only root and this group may.
    SupplementaryGroups = [ "systemd-journal" ];
    ReadWritePaths = repositories;
  }
  # Repositories under /home: visible, and writable only where listed.
  // (if underHome then { ProtectHome = "read-only"; } else { });
}
