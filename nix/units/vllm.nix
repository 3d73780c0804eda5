# The unit of one vLLM instance, as plain data (builtins only). nixpkgs has no
# vLLM service; modules/runtimes/vllm.nix calls this, and
# tests/nix scores the same output.
#
# vLLM is a runtime, not an hwc-ai daemon: it does not speak sd_notify, so it
# is Type=exec and readiness is an ExecStartPost that waits for GET /health
# (docs/adr/0003-nixos-module-design.md). It starts from the same baseline
# (../hardening.nix) and relaxes only what CUDA/ROCm and PyTorch need, each
# relaxation below with its reason; the result matches nixpkgs' ollama unit.
{
  name,
  # Path of the `vllm` executable and its arguments (`serve MODEL ...`).
  vllmBin,
  args,
  # Base URL of the instance (http://127.0.0.1:8000): readiness is GET
  # <url>/health answering 200.
  url,
  # Path of curl, which runs the readiness check.
  curlBin,
  # null, "cuda" or "rocm".
  acceleration ? null,
  # Model loading, weight download (first start) and CUDA graph capture of a
  # 120b model take minutes.
  startTimeoutSec ? 1800,
}:
let
  hardening = import ../hardening.nix;
  inherit (import ../exec-args.nix) escapeExecArgs;
  # Retries every 2 s (each try bounded to 5 s) until /health answers 200;
  # TimeoutStartSec bounds the whole wait.
  readyCheck = escapeExecArgs [
    curlBin
    "--fail"
    "--silent"
    "--output"
    "/dev/null"
    "--max-time"
    "5"
    "--retry"
    "1000000"
    "--retry-delay"
    "2"
    "--retry-all-errors"
    "--retry-max-time"
    "0"
    "${url}/health"
  ];
  gpuDevices =
    if acceleration == "cuda" then
      [
        # NVIDIA's device nodes, by the major numbers in /proc/devices, as
        # nixpkgs' ollama unit allows them.
        "char-nvidiactl"
        "char-nvidia-caps"
        "char-nvidia-frontend"
        "char-nvidia-uvm"
      ]
    else if acceleration == "rocm" then
      [
        "char-drm"
        "char-fb"
        "char-kfd"
      ]
    else
      [ ];
in
{
  unitConfig = {
    Description = "vLLM instance ${name}";
    StartLimitIntervalSec = 3600;
    StartLimitBurst = 3;
  };
  serviceConfig =
    hardening
    // {
      Type = "exec";
      ExecStart = "${vllmBin} ${escapeExecArgs args}";
      ExecStartPost = readyCheck;
      Restart = "on-failure";
      RestartSec = 10;
      TimeoutStartSec = startTimeoutSec;
      # vLLM finishes running requests on SIGTERM; past this it is killed.
      TimeoutStopSec = 60;
      StateDirectory = "vllm/${name}";
      StateDirectoryMode = "0700";

      # Relaxation: the GPU device nodes must be visible (PrivateDevices would
      # hide them); DevicePolicy=closed still limits access to the listed ones.
      PrivateDevices = acceleration == null;
      DeviceAllow = gpuDevices;

      # Relaxation: PyTorch/Triton and the CUDA driver's PTX JIT create
      # writable+executable mappings; MemoryDenyWriteExecute kills them.
      MemoryDenyWriteExecute = false;

      # Relaxation: PyTorch and NCCL set CPU affinity and NUMA memory policy
      # (sched_setaffinity, set_mempolicy, mbind: the @resources group).
      SystemCallFilter = [
        "@system-service"
        "~@privileged"
      ];

      # Relaxation: PyTorch/psutil read /proc/cpuinfo and /proc/meminfo.
      ProcSubset = "all";

      # Relaxation: torch.distributed and NCCL list network interfaces with
      # getifaddrs(), which uses a netlink socket, even on one host.
      RestrictAddressFamilies = [
        "AF_INET"
        "AF_INET6"
        "AF_UNIX"
        "AF_NETLINK"
      ];
    }
    // (
      if acceleration == "rocm" then
        {
          # ROCm opens /dev/kfd and /dev/dri/renderD*, owned by these groups.
          SupplementaryGroups = [
            "render"
            "video"
          ];
        }
      else
        { }
    );
}
