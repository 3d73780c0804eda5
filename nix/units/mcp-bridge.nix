# The hwc-mcp-bridge unit, as plain data (builtins only). Used by
# modules/mcp-bridge.nix and by the checks that run without nixpkgs.
#
# The bridge's children (the stdio MCP servers) run inside this unit's
# sandbox, in their own process groups: what they may touch is what the unit
# may touch, plus the paths given here.
{
  # Path of the daemon's binary.
  bin,
  configFile,
  credentials ? { },
  # Directories a server may write (the filesystem server's roots, a git
  # server's repositories): ReadWritePaths=.
  writablePaths ? [ ],
  # Directories a server may read outside the store and /etc (the rest of
  # the tree is already readable): under /home they need ProtectHome relaxed.
  readablePaths ? [ ],
  # A server whose runtime compiles code at run time (Node.js and its V8
  # JIT, the JVM): writable+executable memory.
  jit ? false,
}:
let
  underHome = builtins.any (
    p: builtins.match "/(home|root|run/user)(/.*)?" p != null
  ) (writablePaths ++ readablePaths);
in
import ./daemon.nix {
  description = "hwc-ai MCP bridge (stdio MCP servers over authenticated HTTP)";
  execStart = "${bin} --config ${configFile}";
  stateDirectory = "hwc-ai/mcp-bridge";
  inherit credentials;
  watchdogSec = 30;
  # Children are stopped (their whole group) within the drain.
  stopTimeoutSec = 45;
  relaxations = {
    # The bridge lowers each child's limits (memory, open files, CPU time)
    # before exec: setrlimit/prlimit64, which the baseline's ~@resources
    # denies. Lowering a limit needs no privilege; raising the hard limit
    # still fails without CAP_SYS_RESOURCE (none is held).
    SystemCallFilter = [
      "@system-service"
      "~@privileged"
      "~@resources"
      "setrlimit"
      "prlimit64"
    ];
    ReadWritePaths = writablePaths;
    ReadOnlyPaths = readablePaths;
  }
  # Node.js servers (the npm ones) need W+X memory for V8's JIT; only when a
  # server says so (`jit = true`), else the baseline holds.
  // (if jit then { MemoryDenyWriteExecute = false; } else { })
  # Paths under /home: visible read-only, and writable only where listed.
  // (if underHome then { ProtectHome = "read-only"; } else { });
}
