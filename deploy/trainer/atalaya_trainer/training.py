"""LoRA training with PEFT on a causal language model. Imported only once the training dependencies are
known to be installed (cli.py checks first)."""

from __future__ import annotations

import json
import math
import os
import random
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import transformers
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import AutoModelForCausalLM, AutoTokenizer, get_linear_schedule_with_warmup

from .cli import emit
from .data import BadInput, Conversation
from .tiny import CHAT_TEMPLATE, load_tiny, tiny_config_path

IGNORE = -100  # label of tokens that do not count in the loss
BASE_SUBDIR = "base"  # where the tiny base model and its tokenizer are saved, beside the adapter

transformers.logging.set_verbosity_error()
transformers.logging.disable_progress_bar()
# Noise for this use, not problems: PEFT looks for the base's config under the adapter's relative base path,
# and calls a transformers method that was renamed.
warnings.filterwarnings("ignore", message="Could not find a config file in", category=UserWarning)
warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)


@dataclass
class TrainingOptions:
    base_model: str
    train: list[Conversation]
    validation: list[Conversation] | None
    output_dir: Path
    rank: int = 8
    alpha: float = 16.0
    dropout: float = 0.05
    epochs: float = 1.0
    learning_rate: float = 2e-4
    max_steps: int | None = None
    batch_size: int = 4
    gradient_accumulation_steps: int = 1
    max_length: int = 2048
    warmup_steps: int = 0
    seed: int = 0
    target_modules: str | None = None
    log_every: int = 1


@dataclass
class TrainingResult:
    model: PeftModel
    tokenizer: Any
    metrics: dict[str, Any]


@dataclass
class Example:
    input_ids: list[int]
    labels: list[int]


def pick_device() -> tuple[torch.device, torch.dtype]:
    """CUDA when there is a GPU (bfloat16 where it supports it), else the CPU in float32."""
    if torch.cuda.is_available():
        return torch.device("cuda"), torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
    return torch.device("cpu"), torch.float32


def load_base(name: str, dtype: torch.dtype) -> tuple[Any, Any, bool]:
    """(model, tokenizer, is_tiny). The tiny model is always float32: it is small and trains on the CPU."""
    config_path = tiny_config_path(name)
    if config_path is not None:
        if not config_path.is_file():
            raise BadInput(f"tiny model configuration {config_path}: file not found")
        try:
            model, tokenizer = load_tiny(config_path)
        except (OSError, ValueError, KeyError) as exc:
            raise BadInput(f"tiny model configuration {config_path}: {exc}") from None
        return model, tokenizer, True
    try:
        tokenizer = AutoTokenizer.from_pretrained(name)
        model = AutoModelForCausalLM.from_pretrained(name, dtype=dtype)
    except (OSError, ValueError) as exc:
        raise BadInput(f"base model {name!r} could not be loaded: {exc}") from None
    return model, tokenizer, False


def _render(tokenizer: Any, messages: list[dict[str, str]], *, generation_prompt: bool) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)


def _assistant_spans(
    tokenizer: Any, messages: list[dict[str, str]], full: str
) -> list[tuple[int, int]] | None:
    """Character spans of the assistant turns in ``full`` (the rendered conversation), found by rendering each
    prefix; None when the template does not render prefixes as prefixes of the whole (then every token counts)."""
    spans = []
    for index, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        try:
            before = _render(tokenizer, messages[:index], generation_prompt=True) if index else ""
            upto = _render(tokenizer, messages[: index + 1], generation_prompt=False)
        except Exception:
            return None
        if not (upto.startswith(before) and full.startswith(upto)):
            return None
        spans.append((len(before), len(upto)))
    return spans


def encode(
    conversations: list[Conversation], tokenizer: Any, max_length: int
) -> tuple[list[Example], dict[str, int]]:
    """Token ids and labels: the loss is on the assistant turns only (their text and end-of-turn marker),
    unless the chat template makes that impossible to locate. Conversations left with no assistant token after
    truncation to ``max_length`` are skipped."""
    examples: list[Example] = []
    stats = {"skipped": 0, "all_tokens": 0, "truncated": 0}
    for conversation in conversations:
        full = _render(tokenizer, conversation.messages, generation_prompt=False)
        spans = _assistant_spans(tokenizer, conversation.messages, full)
        encoded = tokenizer(full, add_special_tokens=False, return_offsets_mapping=spans is not None)
        ids = list(encoded["input_ids"])
        if spans is None:
            labels = list(ids)
            stats["all_tokens"] += 1
        else:
            labels = [
                token if any(start <= offset[0] < end for start, end in spans) else IGNORE
                for token, offset in zip(ids, encoded["offset_mapping"], strict=True)
            ]
        if len(ids) > max_length:
            ids, labels = ids[:max_length], labels[:max_length]
            stats["truncated"] += 1
        if all(label == IGNORE for label in labels[1:]):
            stats["skipped"] += 1
            continue
        examples.append(Example(ids, labels))
    return examples, stats


def collate(batch: list[Example], pad_id: int, device: torch.device) -> dict[str, torch.Tensor]:
    width = max(len(example.input_ids) for example in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, example in enumerate(batch):
        n = len(example.input_ids)
        ids[row, :n] = torch.tensor(example.input_ids)
        labels[row, :n] = torch.tensor(example.labels)
        mask[row, :n] = 1
    return {"input_ids": ids.to(device), "attention_mask": mask.to(device), "labels": labels.to(device)}


def _autocast(device: torch.device, dtype: torch.dtype) -> Any:
    return torch.autocast(
        device_type=device.type, dtype=dtype, enabled=device.type == "cuda" and dtype != torch.float32
    )


@torch.no_grad()
def evaluate(
    model: Any,
    examples: list[Example],
    batch_size: int,
    pad_id: int,
    device: torch.device,
    dtype: torch.dtype,
) -> float:
    """Mean loss per predicted token over ``examples``."""
    model.eval()
    total, count = 0.0, 0
    for start in range(0, len(examples), batch_size):
        batch = collate(examples[start : start + batch_size], pad_id, device)
        with _autocast(device, dtype):
            loss = model(**batch).loss
        tokens = int((batch["labels"][:, 1:] != IGNORE).sum())
        total += loss.item() * tokens
        count += tokens
    model.train()
    return total / count


def _target_modules(text: str | None) -> str | list[str] | None:
    if text is None or text == "all-linear":
        return text
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise BadInput("--target-modules names no module")
    return names


def _write_json(path: Path, data: dict[str, Any]) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(partial, path)


def train(options: TrainingOptions) -> TrainingResult:
    started = time.monotonic()
    device, dtype = pick_device()
    model, tokenizer, is_tiny = load_base(options.base_model, dtype)
    if is_tiny and device.type == "cpu":
        torch.set_num_threads(1)  # a model this small trains fastest on one thread (threads only contend)
    if not tokenizer.chat_template:
        tokenizer.chat_template = CHAT_TEMPLATE
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    max_length = min(
        options.max_length, getattr(model.config, "max_position_embeddings", None) or options.max_length
    )

    train_examples, stats = encode(options.train, tokenizer, max_length)
    if not train_examples:
        raise BadInput(f"no training conversation has an assistant turn within the first {max_length} tokens")
    validation_examples: list[Example] = []
    if options.validation:
        validation_examples, _ = encode(options.validation, tokenizer, max_length)
        if not validation_examples:
            raise BadInput(
                f"no validation conversation has an assistant turn within the first {max_length} tokens"
            )

    output_dir = options.output_dir
    output_dir.mkdir(parents=True, exist_ok=True)
    if is_tiny:
        # The adapter's configuration names its base but does not hold it: keep the exact base beside it.
        model.save_pretrained(output_dir / BASE_SUBDIR)
        tokenizer.save_pretrained(output_dir / BASE_SUBDIR)

    random.seed(options.seed)
    torch.manual_seed(options.seed)
    lora = LoraConfig(
        r=options.rank,
        lora_alpha=options.alpha,
        lora_dropout=options.dropout,
        target_modules=_target_modules(options.target_modules),
        task_type="CAUSAL_LM",
        fan_in_fan_out=model.config.model_type == "gpt2",  # GPT-2 keeps its weights as Conv1D (in x out)
    )
    try:
        model = get_peft_model(model, lora)
    except ValueError as exc:
        raise BadInput(f"LoRA could not be applied (check --target-modules): {exc}") from None
    model.to(device)
    model.train()

    micro_batches = math.ceil(len(train_examples) / options.batch_size)
    steps_per_epoch = max(1, math.ceil(micro_batches / options.gradient_accumulation_steps))
    total = options.max_steps or max(1, math.ceil(options.epochs * steps_per_epoch))
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=options.learning_rate, weight_decay=0.0)
    scheduler = get_linear_schedule_with_warmup(optimizer, min(options.warmup_steps, total), total)
    pad_id = tokenizer.pad_token_id
    emit(
        "start",
        base_model=options.base_model,
        device=device.type,
        dtype=str(dtype).removeprefix("torch."),
        total=total,
        train_examples=len(train_examples),
        validation_examples=len(validation_examples),
        trainable_parameters=sum(p.numel() for p in trainable),
        skipped_examples=stats["skipped"],
        truncated_examples=stats["truncated"],
        loss_on_all_tokens=stats["all_tokens"],
    )

    validation_loss = initial_validation_loss = None
    if validation_examples:
        validation_loss = initial_validation_loss = evaluate(
            model, validation_examples, options.batch_size, pad_id, device, dtype
        )
        emit("eval", step=0, validation_loss=round(validation_loss, 6))

    generator = torch.Generator().manual_seed(options.seed)
    step, loss_value, evaluated_at = 0, float("nan"), 0
    first_loss = None
    while step < total:
        order = torch.randperm(len(train_examples), generator=generator).tolist()
        batches = [order[i : i + options.batch_size] for i in range(0, len(order), options.batch_size)]
        for first in range(0, len(batches), options.gradient_accumulation_steps):
            group = batches[first : first + options.gradient_accumulation_steps]
            losses = []
            for indices in group:
                batch = collate([train_examples[i] for i in indices], pad_id, device)
                with _autocast(device, dtype):
                    loss = model(**batch).loss
                (loss / len(group)).backward()
                losses.append(loss.item())
            torch.nn.utils.clip_grad_norm_(trainable, 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            loss_value = sum(losses) / len(losses)
            if not math.isfinite(loss_value):
                raise RuntimeError(f"training diverged at step {step}: the loss is {loss_value}")
            first_loss = loss_value if first_loss is None else first_loss
            if step % options.log_every == 0 or step == total:
                emit(
                    "progress",
                    step=step,
                    total=total,
                    loss=round(loss_value, 6),
                    epoch=round(step / steps_per_epoch, 4),
                    learning_rate=scheduler.get_last_lr()[0],
                    elapsed_s=round(time.monotonic() - started, 3),
                )
            if step >= total:
                break
        at_epoch_end = step % steps_per_epoch == 0 or step >= total
        if validation_examples and at_epoch_end and evaluated_at != step:
            validation_loss = evaluate(model, validation_examples, options.batch_size, pad_id, device, dtype)
            evaluated_at = step
            emit("eval", step=step, validation_loss=round(validation_loss, 6))

    model.eval()
    if is_tiny:
        model.peft_config["default"].base_model_name_or_path = BASE_SUBDIR
    model.save_pretrained(output_dir)
    tokenizer.save_pretrained(output_dir)
    metrics = {
        "train_loss": loss_value,
        "train_loss_first": first_loss,
        "validation_loss": validation_loss,
        "validation_loss_initial": initial_validation_loss,
        "steps": step,
        "epochs": round(step / steps_per_epoch, 4),
        "train_examples": len(train_examples),
        "validation_examples": len(validation_examples),
        "duration_s": round(time.monotonic() - started, 3),
        "base_model": options.base_model,
        "base_model_dir": BASE_SUBDIR if is_tiny else None,
        "device": device.type,
    }
    _write_json(output_dir / "metrics.json", metrics)
    return TrainingResult(model=model, tokenizer=tokenizer, metrics=metrics)
