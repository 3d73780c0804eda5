# A GPU server with 80 GB GPUs: two NVIDIA H100 80GB (PCIe), 64 cores,
# 512 GB of RAM. Profile B: vLLM serves gpt-oss-120b on GPU 0 and
# gpt-oss-20b on GPU 1; the router listens on the LAN for the team's
# clients, escalates hard requests to 120b and falls back to OpenRouter when
# 120b is down. Open WebUI for people.
{ config, ... }:
{
  imports = [
    ../../profiles/cluster.nix
    ./hardware.nix
  ];

  networking.hostName = "gpu-server";
  system.stateVersion = "26.05";

  nixpkgs.config = {
    allowUnfree = true;
    # Hopper only: one CUDA architecture to build for.
    cudaCapabilities = [ "9.0" ];
  };

  # Hopper runs NVIDIA's open kernel modules. Headless: persistenced keeps
  # the GPUs initialised, so a vLLM restart does not pay for it.
  services.xserver.videoDrivers = [ "nvidia" ];
  hardware.graphics.enable = true;
  hardware.nvidia = {
    open = true;
    package = config.boot.kernelPackages.nvidiaPackages.production;
    nvidiaPersistenced = true;
    nvidiaSettings = false;
  };

  hwc.ai = {
    router = {
      host = "0.0.0.0";
      openFirewall = true;
      keysFile = "/run/secrets/hwc-ai/router-keys.toml";
      cloudBackends.openrouter = {
        urls = [ "https://openrouter.ai/api/v1" ];
        apiKeyFile = "/run/secrets/hwc-ai/openrouter-key";
      };
    };
    models."gpt-oss-120b".fallbacks = [
      {
        backend = "openrouter";
        model = "openai/gpt-oss-120b";
      }
    ];
    openWebui = {
      enable = true;
      environmentFile = "/run/secrets/hwc-ai/open-webui.env";
    };
  };
}
