# Every hwc.ai module. Import this (or the flake's nixosModules.default,
# which also sets hwc.ai.packages to the flake's own builds).
{
  imports = [
    ./core.nix
    ./models.nix
    ./runtimes/ollama.nix
    ./runtimes/llama-cpp.nix
    ./runtimes/vllm.nix
    ./open-webui.nix
    ./router.nix
    ./health-prober.nix
    ./model-manager.nix
    ./mcp-bridge.nix
    ./agent-runner.nix
    ./cli.nix
    ./monitoring
  ];
}
