"""Starts the demo job, prints its events as they come, relays the approval
to the operator on the host (files in /hwc-demo), and prints the report."""
import json
import os
import sys
import time
import urllib.error
import urllib.request

BASE = "http://127.0.0.1:8472"
REQUESTER = open("/etc/hwc-ai/agent-requester-token").read().strip()
APPROVER = open("/etc/hwc-ai/agent-admin-token").read().strip()


def call(path, token, body=None, accept="application/json"):
    req = urllib.request.Request(BASE + path, method="POST" if body is not None else "GET",
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Authorization": "Bearer " + token, "Accept": accept,
                                          "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            data = r.read().decode()
            return r.status, (json.loads(data) if accept == "application/json" else data)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read().decode() or "{}")


def show(e):
    k, d = e["kind"], e["data"]
    item = d.get("item", {})
    if k == "turn.started":
        print(f"\n-- turn {d['step']}", flush=True)
    elif k == "policy.decision":
        print(f"   policy: {d['summary']}  ->  {d['verdict']} ({d['risk']}, rule {d.get('rule')})", flush=True)
    elif k == "item.completed" and item.get("type") in ("command_execution", "file_change", "tool_call"):
        out = (item.get("output") or "").strip().splitlines()
        print(f"   ran: {item.get('summary')}  [{item.get('status')}]  (event {e['seq']})", flush=True)
        for line in out[:8]:
            print("      | " + line, flush=True)
    elif k == "approval.requested":
        print(f"   WAITING FOR APPROVAL: {d['summary']} ({d['risk']}, {d['approvals']} approval)", flush=True)
    elif k in ("approval.granted", "approval.rejected"):
        print(f"   {k.split('.')[1]} by {d.get('by')}", flush=True)
    elif k == "job.state":
        print(f"   job is {d['state']}" + (f": {d['error']}" if d.get("error") else ""), flush=True)


def main():
    s, job = call("/agent/jobs", REQUESTER, {
        "goal": "agent-target.service (the web service) is down. Find out why and bring it back.",
        "environment": "prod", "tools": ["systemctl_status", "journal", "systemctl"], "max_steps": 8})
    if s != 201:
        print("the job was refused:", job)
        return 1
    jid = job["id"]
    print(f"job {jid} started (goal: {job['spec']['goal']})", flush=True)
    seen, answered = 0, set()
    while True:
        s, ev = call(f"/agent/jobs/{jid}/events?after={seen}", REQUESTER)
        for e in ev.get("events", []):
            seen = e["seq"]
            show(e)
            if e["kind"] == "job.state" and e["data"]["state"] in ("completed", "failed", "cancelled"):
                s, md = call(f"/agent/jobs/{jid}/report", REQUESTER, accept="text/markdown")
                print("\n" + (md if isinstance(md, str) else json.dumps(md)), flush=True)
                return 0
        s, view = call(f"/agent/jobs/{jid}", REQUESTER)
        p = view.get("pending")
        if p and p["digest"] not in answered:
            with open("/hwc-demo/pending.json.tmp", "w") as f:
                json.dump(p, f)
            os.rename("/hwc-demo/pending.json.tmp", "/hwc-demo/pending.json")
            while not os.path.exists("/hwc-demo/answer"):
                time.sleep(0.2)
            answer = open("/hwc-demo/answer").read().strip()
            os.remove("/hwc-demo/answer")
            answered.add(p["digest"])
            if answer == "approve":
                s, r = call(f"/agent/jobs/{jid}/approve", APPROVER, {"digest": p["digest"], "comment": "approved at the demo prompt"})
            else:
                s, r = call(f"/agent/jobs/{jid}/reject", APPROVER, {"comment": answer or "rejected at the demo prompt"})
            print(f"   operator: {answer or 'reject'} -> {s}", flush=True)
        time.sleep(0.3)


sys.exit(main())
