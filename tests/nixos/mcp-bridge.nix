# VM test: hwc.ai.mcp serving nixpkgs' mcp-server-time (Python, stdio) over
# authenticated Streamable HTTP. Proves in a real NixOS: the bridge's unit
# reaches active under its hardening (exposure at most 1.5) with the child
# running inside it; an MCP client's initialize, tools/list and tools/call
# go through to the child; a killed child is restarted by the bridge as a
# new generation, whose sessions start afresh; `systemctl stop` leaves no
# child behind.
#
#   nix build .#checks.x86_64-linux.mcp-bridge   (needs KVM)
{
  pkgs,
  self,
  ...
}:
let
  # A test secret, in /etc (the store) on purpose; real hosts keep it in
  # /run/secrets.
  token = "mcp-vm-test-token";
in
pkgs.testers.runNixOSTest {
  name = "hwc-ai-mcp-bridge";

  nodes.machine =
    { pkgs, ... }:
    {
      imports = [ self.nixosModules.default ];

      hwc.ai = {
        enable = true;
        mcp = {
          enable = true;
          servers.time = {
            package = pkgs.mcp-server-time;
            args = [
              "--local-timezone"
              "UTC"
            ];
            # Restarted quickly once killed (the defaults: 500ms, up to 30s).
            settings.restart = {
              base = "200ms";
              max = "2s";
            };
          };
          tokens.client = {
            file = "/etc/hwc-ai-test/mcp-client-token";
            role = "requester";
          };
        };
      };

      environment.etc."hwc-ai-test/mcp-client-token".text = token;

      environment.systemPackages = [
        pkgs.curl
        pkgs.jq
      ];
    };

  testScript = ''
    import json
    import shlex

    auth = "-H 'Authorization: Bearer ${token}'"
    # A pattern for pgrep/pkill -f that matches the child's command lines
    # (the bridge's guard and the server under it both name the package's
    # store path) but not the shell the test driver runs the command in,
    # whose command line holds the pattern itself.
    child = shlex.quote("mcp-server-tim[e]")

    def mcp(body, session=None):
        """One JSON-RPC POST to /mcp/time: (HTTP status, headers, JSON body or None)."""
        headers = [
            "Authorization: Bearer ${token}",
            "Content-Type: application/json",
            "Accept: application/json, text/event-stream",
            "MCP-Protocol-Version: 2025-11-25",
        ]
        if session:
            headers.append(f"Mcp-Session-Id: {session}")
        out = machine.succeed(
            "curl -s -i "
            + " ".join(f"-H {shlex.quote(h)}" for h in headers)
            + f" --data-binary {shlex.quote(json.dumps(body))} http://127.0.0.1:8471/mcp/time"
        )
        head, _, text = out.replace("\r\n", "\n").partition("\n\n")
        lines = head.split("\n")
        fields = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            fields[name.strip().lower()] = value.strip()
        return int(lines[0].split()[1]), fields, (json.loads(text) if text.strip() else None)

    def session():
        """A new session-era session: initialize, then notifications/initialized."""
        status, fields, init = mcp({
            "jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {
                "protocolVersion": "2025-11-25",
                "capabilities": {},
                "clientInfo": {"name": "hwc-vm-test", "version": "0"},
            },
        })
        assert status == 200, (status, init)
        assert init["result"]["protocolVersion"] == "2025-11-25", init
        sid = fields["mcp-session-id"]
        status, _, _ = mcp({"jsonrpc": "2.0", "method": "notifications/initialized"}, sid)
        assert status == 202, status
        return sid, init

    def time_server():
        servers = json.loads(machine.succeed(f"curl -sf {auth} http://127.0.0.1:8471/servers"))["servers"]
        return next(s for s in servers if s["name"] == "time")

    def exposure(unit):
        line = machine.succeed(f"systemd-analyze security --no-pager {unit} | tail -n 1")
        return float(line.split(":")[1].split()[0])

    machine.wait_for_unit("hwc-mcp-bridge.service")
    machine.wait_for_open_port(8471, "127.0.0.1")

    with subtest("the time server runs and the bridge is ready"):
        machine.wait_until_succeeds("curl -sf http://127.0.0.1:8471/readyz", timeout=60)
        server = time_server()
        assert server["state"]["state"] == "running", server
        assert server["url"] == "/mcp/time" and server["required"], server
        first = server["state"]["generation"]
        code = machine.succeed("curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8471/servers")
        assert code == "401", code

    with subtest("the bridge's unit: DynamicUser, notify, hardened, the child inside it"):
        show = machine.succeed("systemctl show -p Type,DynamicUser,SubState hwc-mcp-bridge")
        assert "Type=notify" in show and "DynamicUser=yes" in show and "SubState=running" in show, show
        score = exposure("hwc-mcp-bridge.service")
        assert score <= 1.5, f"exposure {score}"
        machine.succeed(
            f"pids=$(pgrep -f {child}); test -n \"$pids\"; "
            "cgroup=$(systemctl show -P ControlGroup hwc-mcp-bridge); "
            "for pid in $pids; do grep -qx \"0::$cgroup\" /proc/$pid/cgroup; done"
        )

    with subtest("MCP over Streamable HTTP: initialize, tools/list, tools/call"):
        sid, init = session()
        assert init["result"]["serverInfo"]["name"] == "mcp-time", init
        status, _, listed = mcp({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, sid)
        assert status == 200, (status, listed)
        names = {t["name"] for t in listed["result"]["tools"]}
        assert {"get_current_time", "convert_time"} <= names, listed
        status, _, called = mcp({
            "jsonrpc": "2.0", "id": 3, "method": "tools/call",
            "params": {"name": "get_current_time", "arguments": {"timezone": "Etc/UTC"}},
        }, sid)
        assert status == 200 and not called["result"].get("isError"), (status, called)
        assert "Etc/UTC" in called["result"]["content"][0]["text"], called

    with subtest("a killed child is restarted by the bridge, as a new generation"):
        machine.succeed(f"pkill -KILL -f {child}")
        machine.wait_until_succeeds(
            f"curl -sf {auth} http://127.0.0.1:8471/servers | "
            f"jq -e '.servers[] | select(.name == \"time\") | .state.state == \"running\" and .state.generation > {first}'",
            timeout=60,
        )
        machine.succeed("systemctl is-active hwc-mcp-bridge.service")
        # The old session was bound to the old child: clients initialize again.
        status, _, _ = mcp({"jsonrpc": "2.0", "id": 4, "method": "tools/list"}, sid)
        assert status == 404, status
        sid, _ = session()
        status, _, called = mcp({
            "jsonrpc": "2.0", "id": 5, "method": "tools/call",
            "params": {"name": "convert_time", "arguments": {
                "source_timezone": "Etc/UTC", "time": "12:00", "target_timezone": "Asia/Tokyo",
            }},
        }, sid)
        assert status == 200 and "Asia/Tokyo" in called["result"]["content"][0]["text"], (status, called)

    with subtest("systemctl stop: inactive, clean, and no child left behind"):
        machine.succeed(f"pgrep -f {child}")
        machine.succeed("systemctl stop hwc-mcp-bridge")
        show = machine.succeed("systemctl show -p ActiveState,Result hwc-mcp-bridge")
        assert "ActiveState=inactive" in show and "Result=success" in show, show
        machine.fail(f"pgrep -f {child}")
  '';
}
