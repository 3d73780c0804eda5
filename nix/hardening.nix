# The systemd hardening baseline of every hwc-ai daemon.
#
# Plain Nix that needs nothing but builtins, so that tests/nix can
# render a daemon's unit without nixpkgs and score it with
# `systemd-analyze security --offline=true` (the modules in ../modules use the
# very same attribute set). Values follow the shape of NixOS's
# `systemd.services.<name>.serviceConfig`: a list becomes one `Key=value` line
# per element, booleans become `true`/`false`.
#
# A daemon that needs less than this baseline must say so in its own unit
# file (nix/units/*.nix) next to the relaxation, with the reason.
{
  # Identity: a transient UID/GID allocated at start, no home, no static
  # account. Implies ProtectSystem=strict, RemoveIPC, PrivateTmp.
  DynamicUser = true;

  # No capabilities at all, neither bounded nor ambient, and no way to gain
  # any (setuid binaries are ignored).
  CapabilityBoundingSet = [ "" ];
  AmbientCapabilities = [ "" ];
  NoNewPrivileges = true;
  RestrictSUIDSGID = true;

  # File system: the whole tree read-only except the unit's own
  # StateDirectory/RuntimeDirectory; no /home, /root, /run/user; private /tmp;
  # no mount propagation either way.
  ProtectSystem = "strict";
  ProtectHome = true;
  PrivateTmp = true;
  PrivateMounts = true;
  UMask = "0077";

  # Devices: only the pseudo devices (/dev/null, /dev/zero, /dev/urandom...).
  PrivateDevices = true;
  DevicePolicy = "closed";

  # Users: the service runs in its own user namespace, where every other UID
  # maps to nobody.
  PrivateUsers = true;

  # Kernel and system: no tunables, modules, kernel log, cgroup writes, clock
  # or hostname changes; /proc shows only the service's own processes.
  ProtectKernelTunables = true;
  ProtectKernelModules = true;
  ProtectKernelLogs = true;
  ProtectControlGroups = true;
  ProtectClock = true;
  ProtectHostname = true;
  ProtectProc = "invisible";
  ProcSubset = "pid";

  # Process: no namespaces, realtime scheduling, personality changes,
  # writable+executable memory, SysV IPC left behind, shared keyrings.
  RestrictNamespaces = true;
  RestrictRealtime = true;
  LockPersonality = true;
  MemoryDenyWriteExecute = true;
  RemoveIPC = true;
  KeyringMode = "private";

  # System calls: the set a well-behaved service needs, without privileged
  # calls and without changing resource limits, priorities or CPU/NUMA
  # affinity. A forbidden call kills the process with SIGSYS (no
  # SystemCallErrorNumber): a sandbox violation is a loud crash in the
  # journal ("status=31/SYS"), never a silently failing call.
  SystemCallArchitectures = "native";
  SystemCallFilter = [
    "@system-service"
    "~@privileged"
    "~@resources"
  ];

  # Sockets: IPv4/IPv6 for HTTP, AF_UNIX for sd_notify, journald and
  # socket activation. No netlink, packet or other families.
  RestrictAddressFamilies = [
    "AF_INET"
    "AF_INET6"
    "AF_UNIX"
  ];
}
