#!/usr/bin/env python3
"""Converts a Hugging Face BERT sentence-embedding model (safetensors, WordPiece
vocab.txt, sentence-transformers pooling config) to an F32 GGUF that
llama-server serves with --embeddings.

This is llama.cpp's convert_hf_to_gguf.py BertModel path (conversion/bert.py)
without torch and transformers, which do not install here (PyPI's torch wheel
pulls the CUDA libraries, download.pytorch.org is not reachable): the same
metadata, the same phantom-space vocabulary, the same tensor names through
gguf-py's TensorNameMap. Needs only numpy, safetensors and llama.cpp's gguf-py.

usage: bert-to-gguf.py MODEL_DIR OUT.gguf
"""
import json
import sys
from pathlib import Path

import gguf
import numpy as np
from safetensors.numpy import load_file


def main() -> None:
    src, out = Path(sys.argv[1]), Path(sys.argv[2])
    hp = json.loads((src / "config.json").read_text())
    assert hp.get("architectures") == ["BertModel"], hp.get("architectures")
    n_layer = hp["num_hidden_layers"]
    arch = gguf.MODEL_ARCH.BERT
    w = gguf.GGUFWriter(str(out), gguf.MODEL_ARCH_NAMES[arch])
    w.add_name(src.name)
    w.add_context_length(hp["max_position_embeddings"])
    w.add_embedding_length(hp["hidden_size"])
    w.add_feed_forward_length(hp["intermediate_size"])
    w.add_block_count(n_layer)
    w.add_head_count(hp["num_attention_heads"])
    w.add_layer_norm_eps(hp["layer_norm_eps"])
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    w.add_causal_attention(False)
    pooling = json.loads((src / "1_Pooling" / "config.json").read_text())
    if pooling.get("pooling_mode_mean_tokens"):
        w.add_pooling_type(gguf.PoolingType.MEAN)
    elif pooling.get("pooling_mode_cls_token"):
        w.add_pooling_type(gguf.PoolingType.CLS)
    else:
        sys.exit(f"unsupported pooling {pooling}")

    # Vocabulary: vocab.txt order; the added special tokens are CONTROL.
    vocab = (src / "vocab.txt").read_text(encoding="utf-8").split("\n")
    if vocab and vocab[-1] == "":
        vocab.pop()
    tok_cfg = json.loads((src / "tokenizer_config.json").read_text())
    specials = {v for k, v in tok_cfg.items() if k.endswith("_token") and isinstance(v, str)}
    specials |= {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"}
    tokens, types = [], []
    for tok in vocab:
        if tok in specials:
            tokens.append(tok)
            types.append(gguf.TokenType.CONTROL)
        else:
            tokens.append(tok[2:] if tok.startswith("##") else "\u2581" + tok)
            types.append(gguf.TokenType.NORMAL)
    w.add_token_type_count(hp.get("type_vocab_size", 1))
    w.add_tokenizer_model("bert")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_types(types)
    gguf.SpecialVocab(src, n_vocab=len(tokens)).add_to_gguf(w)

    names = gguf.get_tensor_name_map(arch, n_layer)
    for name, data in load_file(str(src / "model.safetensors")).items():
        if name.startswith("bert."):
            name = name[5:]
        if name in ("embeddings.position_ids", "pooler.dense.weight", "pooler.dense.bias"):
            continue
        new = names.get_name(name, try_suffixes=(".weight", ".bias"))
        if new is None:
            sys.exit(f"cannot map tensor {name}")
        w.add_tensor(new, data.astype(np.float32))

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
