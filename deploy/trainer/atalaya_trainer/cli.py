"""Command line of the trainer: ``python deploy/trainer/train.py ARGS`` or ``python -m atalaya_trainer ARGS``.

Exit codes: 0 trained and wrote the adapter and metrics.json; 2 bad input (arguments, dataset, base model),
with the message on stderr; 3 the training dependencies are not installed; 1 anything else (traceback on stderr).
Progress goes to stdout as JSON lines (``{"event": "progress", "step": 3, "total": 20, "loss": 4.1, ...}``).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import traceback
from pathlib import Path

from .data import BadInput, read_conversations
from .tiny import tiny_config_path

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_MISSING_DEPENDENCIES = 0, 1, 2, 3
TRAINING_MODULES = ("torch", "transformers", "peft", "safetensors", "tokenizers")
INSTALL_HINT = "pip install -e '.[train]' -c deploy/trainer/constraints.txt (from the repository root)"


def emit(event: str, **fields: object) -> None:
    """One JSON line on stdout, flushed at once so the console's log tail sees it."""
    print(json.dumps({"event": event, **fields}), flush=True)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, got {text}")
    return value


def _dropout(text: str) -> float:
    value = float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="atalaya-trainer",
        description="LoRA fine-tuning of a causal language model on a JSONL chat dataset (PEFT, transformers, torch).",
    )
    add = parser.add_argument
    add(
        "--base-model",
        required=True,
        help="Hugging Face model id or local directory; 'tiny' (the in-repository test model) or a path to a tiny model's config .json",
    )
    add(
        "--train",
        required=True,
        type=str,
        help='training dataset: JSONL, one {"messages": [{"role", "content"}, ...]} per line',
    )
    add("--validation", type=str, help="validation dataset (same format); its loss goes to metrics.json")
    add(
        "--output-dir",
        default=os.environ.get("AIP_MODEL_DIR"),
        help="where the adapter and metrics.json go: a local path, or gs://bucket/path through Cloud Storage FUSE (/gcs) on Vertex AI; default $AIP_MODEL_DIR",
    )
    add("--rank", type=_positive_int, default=8, help="LoRA rank r (default 8)")
    add("--alpha", type=_positive_float, default=16.0, help="LoRA alpha (default 16)")
    add("--dropout", type=_dropout, default=0.05, help="LoRA dropout (default 0.05)")
    add(
        "--epochs",
        type=_positive_float,
        default=1.0,
        help="passes over the training set (default 1; ignored with --max-steps)",
    )
    add(
        "--learning-rate",
        type=_positive_float,
        default=2e-4,
        help="peak learning rate, AdamW, linear decay (default 2e-4)",
    )
    add("--max-steps", type=_positive_int, help="stop after this many optimizer steps (overrides --epochs)")
    add("--batch-size", type=_positive_int, default=4, help="conversations per step (default 4)")
    add(
        "--gradient-accumulation-steps",
        type=_positive_int,
        default=1,
        help="micro-batches per optimizer step (default 1)",
    )
    add(
        "--max-length",
        type=_positive_int,
        default=2048,
        help="tokens per conversation, longer ones truncated (default 2048, at most the model's)",
    )
    add("--warmup-steps", type=_non_negative_int, default=0, help="linear warm-up steps (default 0)")
    add("--seed", type=int, default=0, help="random seed (default 0)")
    add(
        "--target-modules",
        help="comma-separated module names to adapt, or 'all-linear'; default: PEFT's choice for the architecture (gpt2: c_attn; llama, mistral, qwen2, gemma: q_proj,v_proj)",
    )
    add("--log-every", type=_positive_int, default=1, help="a progress line every N steps (default 1)")
    return parser


def resolve_location(location: str) -> Path:
    """A local path for ``location``; ``gs://bucket/path`` becomes ``/gcs/bucket/path`` (Cloud Storage FUSE,
    mounted in every Vertex AI custom training container)."""
    if location.startswith("gs://"):
        fuse = Path("/gcs")
        if not fuse.is_dir():
            raise BadInput(
                f"{location}: gs:// paths are read through Cloud Storage FUSE at /gcs (Vertex AI custom jobs); "
                "it is not mounted here, so pass a local path"
            )
        return fuse / location.removeprefix("gs://")
    return Path(location)


def missing_modules() -> list[str]:
    return [name for name in TRAINING_MODULES if importlib.util.find_spec(name) is None]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)  # exits 2 with a usage message on bad arguments
    try:
        if not args.output_dir:
            raise BadInput("--output-dir is required (or set AIP_MODEL_DIR)")
        train_path = resolve_location(args.train)
        validation_path = resolve_location(args.validation) if args.validation else None
        output_dir = resolve_location(args.output_dir)
        train_set = read_conversations(train_path, label="training")
        validation_set = read_conversations(validation_path, label="validation") if validation_path else None
    except BadInput as exc:
        return _fail(EXIT_BAD_INPUT, "bad_input", str(exc))

    missing = missing_modules()
    if missing:
        return _fail(
            EXIT_MISSING_DEPENDENCIES,
            "missing_dependencies",
            f"the trainer needs the training extra (missing: {', '.join(missing)}); install it with: {INSTALL_HINT}",
        )

    # Before transformers is imported: the tiny model and local directories never touch the network.
    local = tiny_config_path(args.base_model) is not None or Path(args.base_model).exists()
    if local:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

    from .training import TrainingOptions, train

    options = TrainingOptions(
        base_model=args.base_model,
        train=train_set,
        validation=validation_set,
        output_dir=output_dir,
        rank=args.rank,
        alpha=args.alpha,
        dropout=args.dropout,
        epochs=args.epochs,
        learning_rate=args.learning_rate,
        max_steps=args.max_steps,
        batch_size=args.batch_size,
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        max_length=args.max_length,
        warmup_steps=args.warmup_steps,
        seed=args.seed,
        target_modules=args.target_modules,
        log_every=args.log_every,
    )
    try:
        result = train(options)
    except BadInput as exc:
        return _fail(EXIT_BAD_INPUT, "bad_input", str(exc))
    except Exception as exc:
        traceback.print_exc()
        return _fail(EXIT_FAILED, "failed", f"{type(exc).__name__}: {exc}")
    emit("done", output_dir=str(output_dir), metrics=result.metrics)
    return EXIT_OK


def _fail(code: int, kind: str, message: str) -> int:
    emit("error", code=kind, message=message)
    print(f"error: {message}", file=sys.stderr, flush=True)
    return code
