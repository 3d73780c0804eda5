# What every configuration of ./tests.nix needs to evaluate as a real NixOS
# system (the flake's `eval-tests-nixos` check, lib.nixosSystem): a platform,
# a root file system and no boot loader to install. All mkDefault, so the
# example machines' own settings win.
{ lib, ... }:
{
  nixpkgs.hostPlatform = lib.mkDefault "x86_64-linux";
  boot.loader.grub.enable = lib.mkDefault false;
  fileSystems."/" = lib.mkDefault {
    device = "/dev/disk/by-label/nixos";
    fsType = "ext4";
  };
  system.stateVersion = lib.mkDefault "26.05";
}
