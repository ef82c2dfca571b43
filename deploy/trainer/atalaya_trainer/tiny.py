"""The tiny base model for the demo and the tests: a GPT-2-style configuration in the repository
(``deploy/trainer/tiny/config.json``), built with random weights from a fixed seed, and a small byte-level BPE
tokenizer (``tiny/tokenizer.json``, 512 tokens, trained once on ``examples/train.jsonl``). Nothing is downloaded.

Regenerate the tokenizer (only if the special tokens or the vocabulary size change)::

    python -m atalaya_trainer.tiny   # from deploy/trainer/
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

TINY_DIR = Path(__file__).resolve().parent.parent / "tiny"
TINY_NAME = "tiny"
PAD, END = "<|pad|>", "<|end|>"
ROLE_TOKENS = ("<|system|>", "<|user|>", "<|assistant|>")
# Also the fallback for tokenizers that have no chat template of their own.
CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|>\n{{ message['content'] }}<|end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def tiny_config_path(base_model: str) -> Path | None:
    """The configuration file when ``base_model`` names the tiny model (``tiny`` or a path to a JSON config)."""
    if base_model == TINY_NAME:
        return TINY_DIR / "config.json"
    if base_model.endswith(".json"):
        return Path(base_model)
    return None


def load_tiny(config_path: Path) -> tuple[Any, Any]:
    """The tiny model (random weights from the configuration's ``atalaya_init_seed``) and its tokenizer, which
    sits beside the configuration as ``tokenizer.json``."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedTokenizerFast

    settings = json.loads(config_path.read_text(encoding="utf-8"))
    model_type = settings.pop("model_type")
    seed = int(settings.pop("atalaya_init_seed", 0))
    config = AutoConfig.for_model(model_type, **settings)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_file=str(config_path.parent / "tokenizer.json"),
        eos_token=END,
        pad_token=PAD,
        additional_special_tokens=list(ROLE_TOKENS),
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.model_max_length = config.max_position_embeddings
    if len(tokenizer) > config.vocab_size:
        raise ValueError(
            f"{config_path}: vocab_size {config.vocab_size} is smaller than the tokenizer ({len(tokenizer)})"
        )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config)
    model.config._name_or_path = "base"
    return model, tokenizer


def build_tokenizer(texts: list[str], vocab_size: int) -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[PAD, END, *ROLE_TOKENS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer)
    return tokenizer


def main() -> None:
    from .data import read_conversations

    examples = Path(__file__).resolve().parent.parent / "examples" / "train.jsonl"
    texts = [m["content"] for c in read_conversations(examples, label="training") for m in c.messages]
    vocab_size = json.loads((TINY_DIR / "config.json").read_text())["vocab_size"]
    build_tokenizer(texts, vocab_size).save(str(TINY_DIR / "tokenizer.json"))
    print(f"wrote {TINY_DIR / 'tokenizer.json'}")


if __name__ == "__main__":
    main()
