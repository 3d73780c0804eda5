# The node the VM tests share: hwc.ai with llama.cpp serving SmolLM2-135M
# (a fixed-output download, nix/test-model.nix), plus curl and jq for the
# test scripts. Each test adds what it is about.
{ self, smollm }:
{ lib, pkgs, ... }:
{
  imports = [ self.nixosModules.default ];

  virtualisation = {
    memorySize = lib.mkDefault 2048;
    cores = 2;
  };

  hwc.ai = {
    enable = true;
    models.smollm = {
      runtime = "llamaCpp";
      source = "${smollm}";
    };
    runtimes.llamaCpp = {
      enable = true;
      contextSize = 2048;
      # The template of this small model has no Jinja extras to gain.
      jinja = false;
    };
  };

  environment.systemPackages = [
    pkgs.curl
    pkgs.jq
  ];
}
