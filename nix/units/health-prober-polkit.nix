# The polkit rule that lets the health prober restart the units it probes,
# and nothing else: only org.freedesktop.systemd1.manage-units, only the verb
# "restart", only the listed units, only for the prober's own user.
# Builtins only: modules/health-prober.nix and tests/vm render the same rule.
{
  user,
  units,
}:
''
  // hwc-ai: the health prober (${user}) may restart exactly the units it
  // probes, and nothing else.
  polkit.addRule(function(action, subject) {
    if (action.id == "org.freedesktop.systemd1.manage-units" &&
        subject.user == ${builtins.toJSON user} &&
        action.lookup("verb") == "restart" &&
        ${builtins.toJSON units}.indexOf(action.lookup("unit")) >= 0) {
      return polkit.Result.YES;
    }
  });
''
