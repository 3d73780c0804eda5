# The hwc-health-prober unit, as plain data (builtins only). Used by
# modules/health-prober.nix and by the checks that run without nixpkgs.
{
  # Path of the daemon's binary.
  bin,
  configFile,
  credentials ? { },
  # The fixed system user the polkit rule names (modules/health-prober.nix).
  user ? "hwc-ai-prober",
}:
import ./daemon.nix {
  description = "hwc-ai health prober (probes runtimes and daemons, restarts failed units)";
  execStart = "${bin} --config ${configFile}";
  stateDirectory = "hwc-ai/prober";
  # Restarting a unit goes through systemd's D-Bus API, and polkit decides
  # by the caller's user name: a DynamicUser has no stable name to grant
  # org.freedesktop.systemd1.manage-units to, so the prober runs as a fixed
  # system user. It still holds no capability and no file outside its state.
  inherit credentials user;
  watchdogSec = 30;
  stopTimeoutSec = 20;
  relaxations = { };
}
