"""A finished trial as a standard Hugging Face model folder: `config.json`, `model.safetensors`,
the tokenizer files, `generation_config.json` and `README.md` (the hub model card, written by
the caller). The folder loads with transformers' Auto classes, offline and without remote code.

Each architecture maps exactly onto a transformers class (the same arithmetic, weights
renamed and, where transformers keeps them transposed or split, transposed or split):
- decoder -> GPT2LMHeadModel: Conv1D weights are our Linear weights transposed; exact GELU
  (`activation_function: gelu`, not GPT-2's `gelu_new`); the output projection tied to wte.
- encdec -> BlenderbotForConditionalGeneration: pre-LN blocks, learned positions, a final norm
  per stack, one shared table tied to the output (`scale_embedding: false`); our fused q/k/v
  and k/v projections are split; the decoder starts from <pad>, as ours does. Blenderbot has one
  `max_position_embeddings` for both stacks: the shorter table is padded with zeros, rows no
  input of the trained lengths reaches.
- encoder -> XLMRobertaXLForMaskedLM: pre-LN blocks with a final norm, BERT's masked-LM head
  (dense, exact GELU, LayerNorm) and the projection tied to the token table (its bias zero).
  Its positions start at pad_token_id + 1 (fairseq's numbering; padding reads the row at
  pad_token_id): our table is written from that row on, the rows before it zero; its one
  token type is a zero row.

Writing needs torch and safetensors only; transformers is needed to load the folder, not to
write it.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from trainers.architectures import ARCHITECTURES


class ExportError(ValueError):
    """A trial that cannot be exported; the message says why."""


def _t(w: torch.Tensor) -> torch.Tensor:
    return w.detach().t().contiguous()


def _c(w: torch.Tensor) -> torch.Tensor:
    return w.detach().contiguous()


def _parts(fused: torch.nn.Linear, c: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The (weight, bias) of each `c`-wide part of a fused projection (q, k, v; or k, v)."""
    return list(zip(fused.weight.detach().split(c), fused.bias.detach().split(c), strict=True))


def gpt2(model, spec, tok) -> tuple[dict, dict]:
    """The decoder as GPT2LMHeadModel: (config, state dict)."""
    sd = {"transformer.wte.weight": _c(model.wte.weight),
          "transformer.wpe.weight": _c(model.embed.positions.weight),
          "transformer.ln_f.weight": _c(model.ln_f.weight),
          "transformer.ln_f.bias": _c(model.ln_f.bias)}  # fmt: skip
    for i, block in enumerate(model.blocks):
        p = f"transformer.h.{i}."
        sd |= {
            p + "ln_1.weight": _c(block.ln_1.weight), p + "ln_1.bias": _c(block.ln_1.bias),
            p + "attn.c_attn.weight": _t(block.attn.qkv.weight),
            p + "attn.c_attn.bias": _c(block.attn.qkv.bias),
            p + "attn.c_proj.weight": _t(block.attn.proj.weight),
            p + "attn.c_proj.bias": _c(block.attn.proj.bias),
            p + "ln_2.weight": _c(block.ln_2.weight), p + "ln_2.bias": _c(block.ln_2.bias),
            p + "mlp.c_fc.weight": _t(block.mlp.fc.weight),
            p + "mlp.c_fc.bias": _c(block.mlp.fc.bias),
            p + "mlp.c_proj.weight": _t(block.mlp.proj.weight),
            p + "mlp.c_proj.bias": _c(block.mlp.proj.bias),
        }  # fmt: skip
    m = spec.model
    config = {
        "architectures": ["GPT2LMHeadModel"],
        "model_type": "gpt2",
        "vocab_size": tok.vocab_size,
        "n_positions": spec.data.seq_len,
        "n_ctx": spec.data.seq_len,
        "n_embd": m.n_embd,
        "n_layer": m.n_layer,
        "n_head": m.n_head,
        "n_inner": 4 * m.n_embd,
        "activation_function": "gelu",  # exact, as ours (GPT-2's gelu_new is the tanh one)
        "resid_pdrop": m.dropout,
        "embd_pdrop": m.dropout,
        "attn_pdrop": m.dropout,
        "layer_norm_epsilon": 1e-5,
        "initializer_range": 0.02,
        "scale_attn_weights": True,
        "tie_word_embeddings": True,
        "bos_token_id": tok.eos_id,
        "eos_token_id": tok.eos_id,
        "pad_token_id": tok.pad_id,
        "use_cache": True,
    }
    return config, sd


def xlm_roberta_xl(model, spec, tok) -> tuple[dict, dict]:
    """The encoder as XLMRobertaXLForMaskedLM: (config, state dict)."""
    m, c, wte = spec.model, model.config.n_embd, model.wte.weight.detach()
    positions = model.embed.positions.weight.detach()
    offset = tok.pad_id + 1  # the first position's row
    table = torch.cat([positions.new_zeros(offset, c), positions])
    sd = {"roberta.embeddings.word_embeddings.weight": _c(wte),
          "roberta.embeddings.position_embeddings.weight": _c(table),
          "roberta.embeddings.token_type_embeddings.weight": wte.new_zeros(1, c),
          "lm_head.dense.weight": _c(model.head.dense.weight),
          "lm_head.dense.bias": _c(model.head.dense.bias),
          "lm_head.bias": wte.new_zeros(tok.vocab_size)}  # fmt: skip
    sd |= _norm("roberta.encoder.LayerNorm", model.ln_f)
    sd |= _norm("lm_head.layer_norm", model.head.ln)
    for i, block in enumerate(model.blocks):
        p = f"roberta.encoder.layer.{i}."
        (q, qb), (k, kb), (v, vb) = _parts(block.attn.qkv, c)
        sd |= {p + "attention.self.query.weight": _c(q), p + "attention.self.query.bias": _c(qb),
               p + "attention.self.key.weight": _c(k), p + "attention.self.key.bias": _c(kb),
               p + "attention.self.value.weight": _c(v), p + "attention.self.value.bias": _c(vb),
               p + "attention.output.dense.weight": _c(block.attn.proj.weight),
               p + "attention.output.dense.bias": _c(block.attn.proj.bias),
               p + "intermediate.dense.weight": _c(block.mlp.fc.weight),
               p + "intermediate.dense.bias": _c(block.mlp.fc.bias),
               p + "output.dense.weight": _c(block.mlp.proj.weight),
               p + "output.dense.bias": _c(block.mlp.proj.bias)}  # fmt: skip
        sd |= _norm(p + "attention.self_attn_layer_norm", block.ln_1)
        sd |= _norm(p + "LayerNorm", block.ln_2)
    config = {
        "architectures": ["XLMRobertaXLForMaskedLM"],
        "model_type": "xlm-roberta-xl",
        "vocab_size": tok.vocab_size,
        "hidden_size": c,
        "num_hidden_layers": m.n_layer,
        "num_attention_heads": m.n_head,
        "intermediate_size": 4 * c,
        "hidden_act": "gelu",  # exact, as ours
        "hidden_dropout_prob": m.dropout,
        "attention_probs_dropout_prob": m.dropout,
        "max_position_embeddings": offset + spec.data.seq_len,
        "type_vocab_size": 1,
        "initializer_range": 0.02,
        "layer_norm_eps": 1e-5,
        "position_embedding_type": "absolute",
        "is_decoder": False,
        "tie_word_embeddings": True,
        "pad_token_id": tok.pad_id,
        "bos_token_id": tok.eos_id,
        "eos_token_id": tok.eos_id,
        "use_cache": False,
    }
    return config, sd


def _attention(prefix: str, qkv: torch.nn.Linear, proj: torch.nn.Linear, c: int) -> dict:
    (q, qb), (k, kb), (v, vb) = _parts(qkv, c)
    return {prefix + "q_proj.weight": _c(q), prefix + "q_proj.bias": _c(qb),
            prefix + "k_proj.weight": _c(k), prefix + "k_proj.bias": _c(kb),
            prefix + "v_proj.weight": _c(v), prefix + "v_proj.bias": _c(vb),
            prefix + "out_proj.weight": _c(proj.weight),
            prefix + "out_proj.bias": _c(proj.bias)}  # fmt: skip


def _norm(name: str, ln) -> dict:
    return {name + ".weight": _c(ln.weight), name + ".bias": _c(ln.bias)}


def _mlp(prefix: str, mlp) -> dict:
    return {prefix + "fc1.weight": _c(mlp.fc.weight), prefix + "fc1.bias": _c(mlp.fc.bias),
            prefix + "fc2.weight": _c(mlp.proj.weight),
            prefix + "fc2.bias": _c(mlp.proj.bias)}  # fmt: skip


def blenderbot(model, spec, tok) -> tuple[dict, dict]:
    """The encoder-decoder as BlenderbotForConditionalGeneration: (config, state dict)."""
    c = spec.model.n_embd
    positions = max(model.enc_embed.positions.num_embeddings,
                    model.dec_embed.positions.num_embeddings)  # fmt: skip

    def padded(table: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(positions, c, dtype=table.dtype)
        out[: len(table)] = table.detach()
        return out

    # one table: both stacks' embed_tokens and lm_head are tied to model.shared on loading
    sd = {"model.shared.weight": _c(model.wte.weight),
          "final_logits_bias": torch.zeros(1, tok.vocab_size),
          "model.encoder.embed_positions.weight": padded(model.enc_embed.positions.weight),
          "model.decoder.embed_positions.weight":
              padded(model.dec_embed.positions.weight)}  # fmt: skip
    sd |= _norm("model.encoder.layer_norm", model.ln_enc) | _norm("model.decoder.layer_norm",
                                                                  model.ln_f)  # fmt: skip
    for i, block in enumerate(model.encoder):
        p = f"model.encoder.layers.{i}."
        sd |= _attention(p + "self_attn.", block.attn.qkv, block.attn.proj, c)
        sd |= _norm(p + "self_attn_layer_norm", block.ln_1)
        sd |= _norm(p + "final_layer_norm", block.ln_2) | _mlp(p, block.mlp)
    for i, block in enumerate(model.decoder):
        p = f"model.decoder.layers.{i}."
        sd |= _attention(p + "self_attn.", block.attn.qkv, block.attn.proj, c)
        sd |= _norm(p + "self_attn_layer_norm", block.ln_1)
        (k, kb), (v, vb) = _parts(block.cross.kv, c)
        sd |= {p + "encoder_attn.q_proj.weight": _c(block.cross.q.weight),
               p + "encoder_attn.q_proj.bias": _c(block.cross.q.bias),
               p + "encoder_attn.k_proj.weight": _c(k), p + "encoder_attn.k_proj.bias": _c(kb),
               p + "encoder_attn.v_proj.weight": _c(v), p + "encoder_attn.v_proj.bias": _c(vb),
               p + "encoder_attn.out_proj.weight": _c(block.cross.proj.weight),
               p + "encoder_attn.out_proj.bias": _c(block.cross.proj.bias)}  # fmt: skip
        sd |= _norm(p + "encoder_attn_layer_norm", block.ln_2)
        sd |= _norm(p + "final_layer_norm", block.ln_3) | _mlp(p, block.mlp)
    m = spec.model
    config = {
        "architectures": ["BlenderbotForConditionalGeneration"],
        "model_type": "blenderbot",
        "vocab_size": tok.vocab_size,
        "max_position_embeddings": positions,
        "d_model": c,
        "encoder_layers": m.n_layer,
        "decoder_layers": m.n_layer,
        "encoder_attention_heads": m.n_head,
        "decoder_attention_heads": m.n_head,
        "encoder_ffn_dim": 4 * c,
        "decoder_ffn_dim": 4 * c,
        "activation_function": "gelu",
        "dropout": m.dropout,
        "attention_dropout": m.dropout,
        "activation_dropout": 0.0,
        "encoder_layerdrop": 0.0,
        "decoder_layerdrop": 0.0,
        "init_std": 0.02,
        "scale_embedding": False,
        "tie_word_embeddings": True,
        "is_encoder_decoder": True,
        "pad_token_id": tok.pad_id,
        "bos_token_id": tok.pad_id,
        "eos_token_id": tok.eos_id,
        "decoder_start_token_id": tok.pad_id,  # T5's start: <pad>, as our decoder's
        "forced_eos_token_id": None,
        "use_cache": True,
    }
    return config, sd


def byte_tokenizer_json(tok) -> str:
    """Our byte tokenizer as a `tokenizers` tokenizer: the 256 byte characters of byte-level BPE
    with their byte values as ids and no merges, then our special tokens at the same ids."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from tokenizers.pre_tokenizers import ByteLevel

    alphabet = ByteLevel.alphabet()
    table = _bytes_to_unicode()
    vocab = {table[b]: b for b in range(256)}
    assert set(vocab) == set(alphabet)
    hf = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    hf.decoder = decoders.ByteLevel()
    from trainers.tokenizers import SPECIALS

    hf.add_special_tokens(list(SPECIALS))
    ids = [hf.token_to_id(t) for t in SPECIALS]
    if ids != list(range(256, 256 + len(SPECIALS))):
        raise ExportError("the byte tokenizer's special tokens do not land on their ids")
    return hf.to_str()


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's printable stand-in for each byte, as byte-level BPE writes bytes."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
            *range(ord("®"), ord("ÿ") + 1)]  # fmt: skip
    out, extra = {}, 0
    for b in range(256):
        if b in keep:
            out[b] = chr(b)
        else:
            out[b] = chr(256 + extra)
            extra += 1
    return out


def tokenizer_files(tok, seq_len: int, architecture: str) -> dict[str, str]:
    """tokenizer.json, tokenizer_config.json and special_tokens_map.json; `seq_len` is the
    longest input the model reads (the encoder's length for encdec). Text is encoded as text:
    `split_special_tokens` keeps "<eos>" written in a text from becoming the token, and
    nothing is added around the text, as our tokenizers do."""
    from trainers.tokenizers import SPECIALS

    if tok.name == "bytes":
        text = byte_tokenizer_json(tok)
    else:  # a tokenizer file's own post-processor ([CLS] ... [SEP]) would add tokens ours never do
        saved = json.loads(tok.tokenizer.to_str())
        saved["post_processor"] = None
        text = json.dumps(saved, ensure_ascii=False)
    special = {
        "pad_token": "<pad>",
        "eos_token": "<eos>",
        "mask_token": "<mask>",
        "additional_special_tokens": [t for t in SPECIALS if t.startswith("<extra_id")],
    }
    if architecture == "decoder":
        special["bos_token"] = "<eos>"  # GPT-2's convention: one token begins and ends texts
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",  # 5.x writes a name 4.x cannot load
        "split_special_tokens": True,
        "model_max_length": seq_len,
        "clean_up_tokenization_spaces": False,
        "add_bos_token": False,
        "add_eos_token": False,
        **special,
    }  # fmt: skip
    return {
        "tokenizer.json": text,
        "tokenizer_config.json": json.dumps(config, indent=2),
        "special_tokens_map.json": json.dumps(special, indent=2),
    }


def _lengths(spec) -> tuple[int, int]:
    """The longest input the model was trained to read, and the longest it writes."""
    if spec.model.architecture == "encdec":
        from trainers.accounting import encdec_lengths

        return encdec_lengths(spec.data.seq_len)
    return spec.data.seq_len, spec.data.seq_len


def write_folder(spec, model, tok, folder: Path, card: str) -> Path:
    """Write the trial's model folder (which must not exist) and return it."""
    from safetensors.torch import save_file

    arch = spec.model.architecture
    config, state = ARCHITECTURES[arch].load("hf_mapping")(model.eval(), spec, tok)
    config["torch_dtype"] = "float32"
    folder.mkdir(parents=True)
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    generation = {k: config[k] for k in ("bos_token_id", "eos_token_id", "pad_token_id",
                                         "decoder_start_token_id") if k in config}  # fmt: skip
    reads, writes = _lengths(spec)
    generation["max_length"] = writes  # beyond it the positions were never trained
    (folder / "generation_config.json").write_text(json.dumps(generation, indent=2))
    for name, text in tokenizer_files(tok, reads, arch).items():
        (folder / name).write_text(text)
    (folder / "README.md").write_text(card)
    return folder
