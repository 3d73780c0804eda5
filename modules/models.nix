# hwc.ai.models: the models this host serves, declared once. The router's
# [models] table and the model manager's configuration are rendered from
# them; until the model manager runs, Ollama models are pulled by nixpkgs'
# ollama-model-loader (services.ollama.loadModels).
{ config, lib, ... }:
let
  inherit (lib) mkOption types;
  top = config.hwc.ai;
  rt = top.runtimes;
  hlib = import ./lib.nix { inherit lib; };

  modelType = types.submodule (
    { name, config, ... }:
    {
      options = {
        runtime = mkOption {
          type = types.enum [
            "ollama"
            "llamaCpp"
            "vllm"
          ];
          example = "ollama";
          description = ''
            The runtime that serves the model: `"ollama"`
            (hwc.ai.runtimes.ollama), `"llamaCpp"` (hwc.ai.runtimes.llamaCpp)
            or `"vllm"` (the instance named by `instance`).
          '';
        };

        source = mkOption {
          type = types.str;
          example = "gpt-oss:20b";
          description = ''
            Where the model comes from, by runtime: an Ollama library tag
            (`"gpt-oss:20b"`), a Hugging Face repository or a local directory
            for vLLM (`"openai/gpt-oss-120b"`), a GGUF file path for llama.cpp.
          '';
        };

        instance = mkOption {
          type = types.str;
          default = name;
          defaultText = lib.literalMD "<the model's name>";
          description = ''
            For `runtime = "vllm"`: the name of the
            hwc.ai.runtimes.vllm.instances entry that serves this model.
          '';
        };

        servedName = mkOption {
          type = types.str;
          default =
            if config.runtime == "ollama" then
              config.source
            else if config.runtime == "vllm" && rt.vllm.instances ? ${config.instance} then
              rt.vllm.instances.${config.instance}.servedModelName
            else
              name;
          defaultText = lib.literalMD ''
            the Ollama tag for Ollama, the instance's servedModelName for vLLM,
            the model's name for llama.cpp'';
          description = "The name the runtime knows the model by (the `model` of the router's target).";
        };

        digest = mkOption {
          type = types.nullOr (types.strMatching "sha256:[0-9a-f]{64}");
          default = null;
          example = "sha256:aa4295ac10c3afb60e6d711289fc6896f5aef82258997b9efdaed6d0cc4cd8b8";
          description = ''
            Pin: the digest the model manager must find after a pull (the
            Ollama manifest digest, or the sha256 of a GGUF file). `null`
            accepts whatever the source serves.
          '';
        };

        fallbacks = mkOption {
          type = types.listOf (
            types.submodule {
              options = {
                backend = mkOption {
                  type = types.str;
                  description = "A router backend (a cloud backend's name, `ollama`, `vllm-<instance>`...).";
                };
                model = mkOption {
                  type = types.str;
                  description = "The model's name on that backend.";
                };
              };
            }
          );
          default = [ ];
          example = [
            {
              backend = "openrouter";
              model = "openai/gpt-oss-120b";
            }
          ];
          description = ''
            Further router targets tried in order after this model's own
            runtime fails (`[models.<name>] targets` after the first).
          '';
        };

        url = mkOption {
          type = types.nullOr types.str;
          default = null;
          example = "https://huggingface.co/ggml-org/gpt-oss-20b-GGUF/resolve/main/gpt-oss-20b-mxfp4.gguf";
          description = ''
            For a llama.cpp model: where the model manager downloads the GGUF
            file from (http or https; resumable, checked against `sha256`).
            With it, `source` defaults to the placed file,
            `/var/lib/hwc-ai/models/<name>/<file name>`, and llama.cpp starts
            once the file is there. Needs hwc.ai.modelManager.
          '';
        };

        sha256 = mkOption {
          type = types.nullOr (types.strMatching "[0-9a-f]{64}");
          default = null;
          example = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";
          description = "The sha256 (hex) of the file at `url`; required with it.";
        };

        autoUpdate = mkOption {
          type = types.bool;
          default = false;
          description = "Let the model manager pull newer versions of an unpinned model.";
        };
      };

      config.source = lib.mkIf (config.url != null) (
        lib.mkDefault "${hlib.managedModelsDir}/${name}/${hlib.fileNameOfUrl config.url}"
      );
    }
  );
in
{
  options.hwc.ai.models = mkOption {
    type = types.attrsOf modelType;
    default = { };
    example = lib.literalExpression ''
      {
        "gpt-oss-20b" = { runtime = "ollama"; source = "gpt-oss:20b"; };
        "gpt-oss-120b" = { runtime = "vllm"; source = "openai/gpt-oss-120b"; };
      }
    '';
    description = ''
      The models this host serves, by the name clients use. Each becomes a
      `[models.<name>]` entry of the router pointing at its runtime's
      backend, and an entry of the model manager's configuration.
    '';
  };

  config = lib.mkIf top.enable {
    assertions = lib.flatten (
      lib.mapAttrsToList (
        name: m:
        [
          {
            assertion = m.url != null -> m.runtime == "llamaCpp";
            message = ''
              hwc.ai.models."${name}".url is for llama.cpp file models; ${m.runtime} takes
              `source` (an Ollama tag, a Hugging Face repository). Remove url, or set runtime = "llamaCpp".
            '';
          }
          {
            assertion = m.url != null -> m.sha256 != null;
            message = ''
              hwc.ai.models."${name}".url has no sha256: the model manager checks every
              download against it. Set hwc.ai.models."${name}".sha256 (sha256sum of the file).
            '';
          }
          {
            assertion = m.url != null -> top.modelManager.enable;
            message = ''
              hwc.ai.models."${name}" is downloaded from a url, which the model manager does.
              Set hwc.ai.modelManager.enable = true, or give `source` as a local path.
            '';
          }
          {
            assertion = m.runtime == "ollama" -> rt.ollama.enable;
            message = ''
              hwc.ai.models."${name}" is served by Ollama, which is not enabled.
              Set hwc.ai.runtimes.ollama.enable = true, or give the model another runtime.
            '';
          }
          {
            assertion = m.runtime == "llamaCpp" -> rt.llamaCpp.enable;
            message = ''
              hwc.ai.models."${name}" is served by llama.cpp, which is not enabled.
              Set hwc.ai.runtimes.llamaCpp.enable = true, or give the model another runtime.
            '';
          }
          {
            assertion =
              m.runtime == "vllm" -> (rt.vllm.instances ? ${m.instance} && rt.vllm.instances.${m.instance}.enable);
            message = ''
              hwc.ai.models."${name}" is served by the vLLM instance "${m.instance}", which is
              not ${if rt.vllm.instances ? ${m.instance} then "enabled" else "defined"}.
              Define hwc.ai.runtimes.vllm.instances."${m.instance}" (model = "${m.source}"),
              or set hwc.ai.models."${name}".instance to an existing instance.
            '';
          }
        ]
      ) top.models
    );

    # Until the model manager exists, nixpkgs' loader pulls the Ollama models
    # (without digest pinning; the manager adds that).
    services.ollama.loadModels = lib.mkIf (rt.ollama.enable && !top.modelManager.enable) (
      lib.mapAttrsToList (_: m: m.source) (lib.filterAttrs (_: m: m.runtime == "ollama") top.models)
    );
  };
}
