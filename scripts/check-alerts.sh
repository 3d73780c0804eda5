#!/usr/bin/env bash
# Checks the alert rules the NixOS monitoring module loads:
#   1. `promtool check rules` (syntax, templates);
#   2. `promtool test rules` on modules/monitoring/alerts.test.yml;
#   3. coverage: every alert has a test case where it fires and one where it
#      stays silent, and every runbook_url points at a heading of
#      docs/runbook.md; every alert has a summary, a description and a
#      severity of warning or critical.
# Run: scripts/check-alerts.sh (from anywhere; exits non-zero naming the
# alert that lacks something).
# Needs promtool (Debian's prometheus package) and python3 with PyYAML
# (python3-yaml); scripts/setup.sh installs both.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=modules/monitoring

promtool check rules "$dir/alerts.rules.yml"
(cd "$dir" && promtool test rules alerts.test.yml)

python3 - "$dir/alerts.rules.yml" "$dir/alerts.test.yml" docs/runbook.md <<'PY'
import re
import sys

import yaml

rules_path, tests_path, runbook_path = sys.argv[1:]
alerts = [
    r for g in yaml.safe_load(open(rules_path))["groups"] for r in g["rules"] if "alert" in r
]
fires, silent = set(), set()
for case in yaml.safe_load(open(tests_path))["tests"]:
    for t in case.get("alert_rule_test", []):
        (fires if t.get("exp_alerts") else silent).add(t["alertname"])


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    s = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return s.replace(" ", "-")


anchors = {
    slug(m.group(1)) for m in re.finditer(r"^#+\s+(.+)$", open(runbook_path).read(), re.M)
}
problems = []
for r in alerts:
    name = r["alert"]
    if name not in fires:
        problems.append(f"{name}: no test case in {tests_path} where it fires")
    if name not in silent:
        problems.append(f"{name}: no test case in {tests_path} where it stays silent")
    ann = r.get("annotations", {})
    for key in ("summary", "description", "runbook_url"):
        if not ann.get(key):
            problems.append(f"{name}: no {key} annotation")
    severity = r.get("labels", {}).get("severity")
    if severity not in ("warning", "critical"):
        problems.append(f"{name}: severity label is {severity!r}, not warning or critical")
    url = ann.get("runbook_url", "")
    anchor = url.partition("#")[2]
    if not url.split("#")[0].endswith("docs/runbook.md") or anchor not in anchors:
        problems.append(f"{name}: runbook_url {url!r} is not a heading of {runbook_path}")
known = {r["alert"] for r in alerts}
for name in sorted((fires | silent) - known):
    problems.append(f"{tests_path} tests {name}, which {rules_path} does not define")
if problems:
    print("alert coverage check failed:", *problems, sep="\n  ")
    sys.exit(1)
print(f"alert coverage: {len(alerts)} alerts, each fires and stays silent in a test, each runbook anchor exists")
PY
