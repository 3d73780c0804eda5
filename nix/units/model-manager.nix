# The hwc-model-manager unit, as plain data (builtins only). Used by
# modules/model-manager.nix and by the checks that run without nixpkgs.
{
  managerBin,
  configFile,
  credentials ? { },
}:
import ./daemon.nix {
  description = "hwc-ai model manager (declared models: pull, pin, verify, prune)";
  execStart = "${managerBin} --config ${configFile}";
  stateDirectory = "hwc-ai/models";
  inherit credentials;
  watchdogSec = 60;
  # A pull in flight is abandoned at stop and resumed at the next start.
  stopTimeoutSec = 30;
  relaxations = { };
}
