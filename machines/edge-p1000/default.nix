# An edge box with an older NVIDIA card: a Quadro P1000 (Pascal, 4 GB,
# compute capability 6.1) in a small workstation with 32 GB of RAM. Profile
# A: Ollama with gpt-oss-20b, part of the layers on the GPU and the rest on
# the CPU. See docs/stack-selection.md for what to expect from it.
{ config, pkgs, ... }:
{
  imports = [
    ../../profiles/edge.nix
    ./hardware.nix
  ];

  networking.hostName = "edge-p1000";
  system.stateVersion = "26.05";

  nixpkgs.config = {
    # The NVIDIA driver and CUDA are unfree.
    allowUnfree = true;
    # Build CUDA code for this card only (smaller, faster builds).
    cudaCapabilities = [ "6.1" ];
  };

  # Pascal: the 580 branch is the last NVIDIA driver for it, and it predates
  # the open kernel modules.
  services.xserver.videoDrivers = [ "nvidia" ];
  hardware.graphics.enable = true;
  hardware.nvidia = {
    open = false;
    package = config.boot.kernelPackages.nvidiaPackages.legacy_580;
    nvidiaSettings = false;
  };

  hwc.ai = {
    acceleration = "cuda";
    # CUDA 13 dropped Pascal; build Ollama against CUDA 12.
    runtimes.ollama.package = pkgs.ollama-cuda.override { cudaPackages = pkgs.cudaPackages_12; };
    # Written by sops-nix/agenix or by hand (mode 0400, root); never in the store.
    router.keysFile = "/run/secrets/hwc-ai/router-keys.toml";
  };
}
