# The hwc-model-router unit, as plain data (builtins only). Used by
# modules/router.nix and by the checks that run without nixpkgs.
{
  # Path of the hwc-model-router binary.
  bin,
  # The rendered TOML configuration (a store path on NixOS).
  configFile,
  # Credential name -> host path: the keys file and backend API keys.
  credentials ? { },
  # See ./daemon.nix; [ "localhost" ] when clients and backends are all on
  # loopback.
  ipAddressAllow ? null,
  # `server.drain_timeout` in seconds; the stop timeout leaves room above it
  # for the final usage flush.
  drainTimeoutSec ? 30,
  # WATCHDOG=1 deadline. The router pets at half of it while its own health
  # holds; tests/vm shortens it to see a hung router killed in seconds.
  watchdogSec ? 30,
  # kill(1) for ExecReload (a store path on NixOS; Debian's util-linux one
  # for the checks and tests/vm).
  killBin ? "/bin/kill",
}:
import ./daemon.nix {
  description = "hwc-ai model router (OpenAI-compatible gateway)";
  execStart = "${bin} --config ${configFile}";
  # `systemctl reload`: SIGHUP re-reads the keys file (a file that does not
  # load is refused and the keys in force stay).
  execReload = "${killBin} -HUP $MAINPID";
  stateDirectory = "hwc-ai/router";
  inherit credentials ipAddressAllow;
  inherit watchdogSec;
  stopTimeoutSec = drainTimeoutSec + 15;
  # The router needs nothing beyond the baseline: loopback or outbound HTTP,
  # its SQLite database under $STATE_DIRECTORY, its credentials.
  relaxations = { };
}
