# The hwc-model-manager unit, as plain data (builtins only). Used by
# modules/model-manager.nix and by the checks that run without nixpkgs.
{
  # Path of the daemon's binary.
  bin,
  configFile,
  credentials ? { },
  # null: a DynamicUser (its state is private). A name: that fixed user and
  # group, with the state directory group-readable, so the runtimes (in the
  # group) can read the file models the manager places there.
  user ? null,
}:
import ./daemon.nix {
  description = "hwc-ai model manager (declared models: pull, pin, verify, prune)";
  execStart = "${bin} --config ${configFile}";
  stateDirectory = "hwc-ai/models";
  inherit credentials user;
  watchdogSec = 60;
  # A pull in flight is abandoned at stop and resumed at the next start.
  stopTimeoutSec = 30;
  # With a shared user the runtimes (group members) read the placed models:
  # the directory group r-x and new files group-readable; others still
  # nothing.
  relaxations =
    if user == null then
      { }
    else
      {
        StateDirectoryMode = "0750";
        UMask = "0027";
      };
}
