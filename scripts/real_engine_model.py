"""Makes the tiny DeepSeek-V3-architecture model that scripts/real-engine.sh serves with vLLM.

Random weights (seeded), nothing downloaded: a transformers `DeepseekV3Config` (MLA attention,
one dense layer then one MoE layer with 8 routed experts + 1 shared, top-2, sigmoid scoring) and
a 4,096-token byte-level BPE tokenizer trained on the repository's own text files. vLLM's CPU
MLA decode kernel exists only for head size 576, hence kv_lora_rank 512 + qk_rope_head_dim 64.

usage: python real_engine_model.py OUT_DIR CORPUS_DIR
"""

import pathlib
import sys

VOCAB = 4096
SPECIAL = ["<|bos|>", "<|eos|>", "<|pad|>", "<|user|>", "<|assistant|>", "<|system|>"]
# DeepSeek-V3's tool-call markers: vLLM's `--tool-call-parser deepseek_v3` refuses a tokenizer
# without them.
TOOL_TOKENS = [
    "<｜tool▁calls▁begin｜>",
    "<｜tool▁calls▁end｜>",
    "<｜tool▁call▁begin｜>",
    "<｜tool▁call▁end｜>",
    "<｜tool▁sep｜>",
]
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}"
    "<|{{ m['role'] }}|>{{ m['content'] if m['content'] is string else '' }}\n"
    "{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def corpus(root: pathlib.Path):
    """Every text file of the repository worth learning merges from, in a stable order."""
    for path in sorted(root.rglob("*")):
        if path.suffix not in {".md", ".rs", ".toml", ".sh", ".py"} or not path.is_file():
            continue
        if any(part in {"target", ".git", "fuzz"} for part in path.parts):
            continue
        yield path.read_text(encoding="utf-8", errors="replace")


def tokenizer(out: pathlib.Path, root: pathlib.Path):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB,
        special_tokens=SPECIAL + TOOL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus(root), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|bos|>",
        eos_token="<|eos|>",
        pad_token="<|pad|>",
        additional_special_tokens=SPECIAL[3:] + TOOL_TOKENS,
        model_max_length=512,
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(out)
    return fast


def model(out: pathlib.Path, tok):
    import torch
    from transformers import DeepseekV3Config, DeepseekV3ForCausalLM

    torch.manual_seed(0)
    config = DeepseekV3Config(
        vocab_size=VOCAB,
        hidden_size=128,
        intermediate_size=256,
        moe_intermediate_size=64,
        num_hidden_layers=2,
        first_k_dense_replace=1,
        num_attention_heads=4,
        num_key_value_heads=4,
        n_routed_experts=8,
        n_shared_experts=1,
        num_experts_per_tok=2,
        n_group=1,
        topk_group=1,
        topk_method="noaux_tc",
        scoring_func="sigmoid",
        norm_topk_prob=True,
        routed_scaling_factor=1.0,
        q_lora_rank=None,
        kv_lora_rank=512,
        qk_rope_head_dim=64,
        qk_nope_head_dim=32,
        v_head_dim=32,
        max_position_embeddings=4096,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=False,
    )
    net = DeepseekV3ForCausalLM(config).to(torch.bfloat16)
    net.save_pretrained(out)
    params = sum(p.numel() for p in net.parameters())
    print(f"real-engine: model {out} with {params / 1e6:.1f} M parameters", file=sys.stderr)


def main():
    out, root = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    model(out, tokenizer(out, root))


if __name__ == "__main__":
    main()
