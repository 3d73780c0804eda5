{
  description = "hwc-ai: local models on your GPU behind one OpenAI-compatible router, as NixOS modules";

  # The current NixOS stable release. flake.lock pins the exact commit;
  # `nix flake update` moves it (docs/nixos.md).
  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-26.05";

  outputs =
    { self, nixpkgs }:
    let
      inherit (nixpkgs) lib;
      systems = [
        "x86_64-linux"
        "aarch64-linux"
      ];
      forAllSystems = f: lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});

      # One module per concern; `default` imports them all and points the
      # `package` options at this flake's builds.
      concerns = {
        core = ./modules/core.nix;
        models = ./modules/models.nix;
        ollama = ./modules/runtimes/ollama.nix;
        llama-cpp = ./modules/runtimes/llama-cpp.nix;
        vllm = ./modules/runtimes/vllm.nix;
        open-webui = ./modules/open-webui.nix;
        router = ./modules/router.nix;
        health-prober = ./modules/health-prober.nix;
        model-manager = ./modules/model-manager.nix;
        mcp-bridge = ./modules/mcp-bridge.nix;
        agent-runner = ./modules/agent-runner.nix;
        monitoring = ./modules/monitoring;
      };

      machine =
        path:
        lib.nixosSystem {
          modules = [
            self.nixosModules.default
            path
          ];
        };
    in
    {
      packages = forAllSystems (
        pkgs:
        let
          daemons = pkgs.callPackage ./nix/packages.nix { };
        in
        daemons // { default = daemons.hwc-ai-all; }
      );

      # For hosts that prefer pkgs.hwc-model-router & co.
      overlays.default =
        final: _prev:
        builtins.removeAttrs (final.callPackage ./nix/packages.nix { }) [
          "override"
          "overrideDerivation"
        ];

      nixosModules = concerns // {
        default =
          { pkgs, ... }:
          {
            imports = [ ./modules ];
            hwc.ai.packages = lib.mkDefault (self.packages.${pkgs.stdenv.hostPlatform.system} or { });
          };
        profile-edge = ./profiles/edge.nix;
        profile-cluster = ./profiles/cluster.nix;
      };

      nixosConfigurations = {
        edge-p1000 = machine ./machines/edge-p1000;
        gpu-server = machine ./machines/gpu-server;
      };

      checks.x86_64-linux =
        let
          pkgs = nixpkgs.legacyPackages.x86_64-linux;
          # Evaluating a machine's toplevel derivation runs every module and
          # assertion; building it would build CUDA, which a check need not.
          evalMachine =
            name:
            pkgs.writeText "eval-${name}" (
              builtins.unsafeDiscardStringContext self.nixosConfigurations.${name}.config.system.build.toplevel.drvPath
            );
          # A check that passes when every test of nix/eval/tests.nix holds
          # under `evaluator`, and prints each failure otherwise.
          moduleTests =
            evaluator: args:
            let
              tests = import ./nix/eval/tests.nix ({ inherit lib; } // args);
              failed = builtins.filter (t: !t.ok) tests.results;
              total = toString (builtins.length tests.results);
            in
            pkgs.runCommand "hwc-ai-eval-tests-${lib.toLower evaluator}" { } (
              if failed == [ ] then
                "echo ${total} module evaluation tests passed against ${evaluator} > $out"
              else
                ''
                  echo "${toString (builtins.length failed)} of ${total} module evaluation tests failed against ${evaluator}:" >&2
                  echo ${lib.escapeShellArg (lib.concatMapStringsSep "\n" (t: "- ${t.name}: ${t.detail}") failed)} >&2
                  exit 1
                ''
            );
          testArgs = {
            inherit pkgs self;
            smollm = pkgs.callPackage ./nix/test-model.nix { };
          };
        in
        {
          eval-edge-p1000 = evalMachine "edge-p1000";
          eval-gpu-server = evalMachine "gpu-server";

          # The module evaluation tests (nix/eval/tests.nix), twice: with the
          # stand-ins of nixpkgs' modules (what tests/nix runs without
          # nixpkgs), and against real NixOS, each configuration a
          # lib.nixosSystem with the flake's nixosModules.default.
          eval-tests = moduleTests "stand-ins" { };
          eval-tests-nixos = moduleTests "NixOS" {
            evalModules =
              modules:
              lib.nixosSystem {
                modules = [
                  self.nixosModules.default
                  ./nix/eval/nixos-base.nix
                ]
                ++ modules;
              };
          };

          formatting = pkgs.runCommand "hwc-ai-nixfmt" { nativeBuildInputs = [ pkgs.nixfmt ]; } ''
            cd ${self}
            find . -name '*.nix' -not -path './target/*' -print0 | xargs -0 nixfmt --check
            touch $out
          '';

          router-llama-cpp = import ./tests/nixos/router-llama-cpp.nix testArgs;
          # The agent runner repairing a failed unit behind an approval, with a
          # scripted model (tests/vm/scripted_model.py) in place of the router.
          agent-runner = import ./tests/nixos/agent-runner.nix testArgs;
          # The MCP bridge in front of nixpkgs' mcp-server-time.
          mcp-bridge = import ./tests/nixos/mcp-bridge.nix testArgs;
        }
        # The prober's VM test once its crate is in the workspace.
        // lib.optionalAttrs (self.packages.x86_64-linux ? hwc-health-prober) {
          health-prober = import ./tests/nixos/health-prober.nix testArgs;
          monitoring = import ./tests/nixos/monitoring.nix testArgs;
        }
        // lib.optionalAttrs (self.packages.x86_64-linux ? hwc-model-manager) {
          model-manager = import ./tests/nixos/model-manager.nix testArgs;
        }
        // builtins.removeAttrs self.packages.x86_64-linux [ "default" ];

      devShells = forAllSystems (pkgs: {
        default = pkgs.mkShell {
          inputsFrom = [ self.packages.${pkgs.stdenv.hostPlatform.system}.hwc-model-router ];
          packages = [
            pkgs.cargo
            pkgs.rustc
            pkgs.clippy
            pkgs.rustfmt
            pkgs.rust-analyzer
            pkgs.nixfmt
            pkgs.prometheus
            pkgs.llama-cpp
            pkgs.python3
          ];
        };
      });

      formatter = forAllSystems (pkgs: pkgs.nixfmt);
    };
}
