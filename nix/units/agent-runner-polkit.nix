# The polkit rule that lets the agent runner start, stop, restart and reload
# the units named in hwc.ai.agent.unitControl, and nothing else: only
# org.freedesktop.systemd1.manage-units, only those verbs (systemd's names
# for StartUnit, StopUnit, RestartUnit and ReloadUnit, the calls the runner
# makes), only those units (full names: systemd passes the unit's id), only
# for the runner's own user. Whether the agent may ask at all is still the
# policy's decision (R2 with one approval by the built-in policy); this rule
# is the ceiling the host puts on it. Builtins only: modules/agent-runner.nix
# and tests/vm render the same rule.
{
  user,
  units,
  verbs ? [
    "start"
    "stop"
    "restart"
    "reload"
  ],
}:
''
  // hwc-ai: the agent runner (${user}) may ${builtins.concatStringsSep ", " verbs} exactly the
  // units of hwc.ai.agent.unitControl, and nothing else.
  polkit.addRule(function(action, subject) {
    if (action.id == "org.freedesktop.systemd1.manage-units" &&
        subject.user == ${builtins.toJSON user} &&
        ${builtins.toJSON verbs}.indexOf(action.lookup("verb")) >= 0 &&
        ${builtins.toJSON units}.indexOf(action.lookup("unit")) >= 0) {
      return polkit.Result.YES;
    }
  });
''
