"""The LoRA trainer (deploy/trainer/): the tiny in-repository model trains on the example chat dataset, writes
an adapter that reloads onto the saved base with identical outputs, reports progress as JSON lines, and fails
with exit 2 on bad input and exit 3 without the training dependencies. Nothing here imports Django."""

import json
import math
import os
import re
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TRAINER = ROOT / "deploy" / "trainer"
SCRIPT = TRAINER / "train.py"
EXAMPLES = TRAINER / "examples"
TRAIN, VALIDATION = EXAMPLES / "train.jsonl", EXAMPLES / "validation.jsonl"
STEPS = 20
RANK, ALPHA, DROPOUT = 4, 8.0, 0.1

sys.path.insert(0, str(TRAINER))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def _arguments(output_dir: Path) -> list[str]:
    return [
        "--base-model", "tiny", "--train", str(TRAIN), "--validation", str(VALIDATION),
        "--output-dir", str(output_dir), "--max-steps", str(STEPS), "--learning-rate", "3e-2",
        "--rank", str(RANK), "--alpha", str(ALPHA), "--dropout", str(DROPOUT), "--batch-size", "4", "--seed", "7",
    ]  # fmt: skip


def _run(
    python: str, *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(
        [python, *args], cwd=cwd, env={**clean, **(env or {})}, capture_output=True, text=True, timeout=300
    )


def _events(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Trained in this process, so the in-memory model can be compared with what was written."""
    from atalaya_trainer.cli import main
    from atalaya_trainer.data import read_conversations
    from atalaya_trainer.training import TrainingOptions, train

    assert main  # the same package the command line runs
    output_dir = tmp_path_factory.mktemp("adapter")
    options = TrainingOptions(
        base_model="tiny",
        train=read_conversations(TRAIN, label="training"),
        validation=read_conversations(VALIDATION, label="validation"),
        output_dir=output_dir,
        rank=RANK,
        alpha=ALPHA,
        dropout=DROPOUT,
        learning_rate=3e-2,
        max_steps=STEPS,
        batch_size=4,
        seed=7,
    )
    return train(options), output_dir


def test_the_tiny_model_learns(trained):
    result, _ = trained
    metrics = result.metrics
    assert metrics["steps"] == STEPS
    assert metrics["train_loss"] < metrics["train_loss_first"] - 0.3
    assert metrics["validation_loss"] < metrics["validation_loss_initial"] - 0.2


def test_the_adapter_base_and_metrics_are_written(trained):
    _, output_dir = trained
    assert (output_dir / "adapter_model.safetensors").stat().st_size > 0
    config = json.loads((output_dir / "adapter_config.json").read_text())
    assert (config["peft_type"], config["r"], config["lora_alpha"], config["lora_dropout"]) == (
        "LORA", RANK, ALPHA, DROPOUT,
    )  # fmt: skip
    assert config["target_modules"] == ["c_attn"]  # PEFT's default for GPT-2
    assert config["base_model_name_or_path"] == "base"
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        assert (output_dir / "base" / name).is_file()

    metrics = json.loads((output_dir / "metrics.json").read_text())
    assert metrics["steps"] == STEPS
    assert (metrics["train_examples"], metrics["validation_examples"]) == (26, 4)
    # 26 conversations, 4 a step: 7 steps an epoch
    assert metrics["epochs"] == pytest.approx(STEPS / 7, abs=1e-3)
    for key in ("train_loss", "validation_loss", "duration_s"):
        assert math.isfinite(metrics[key]) and metrics[key] > 0


def test_the_adapter_reloads_onto_the_saved_base_with_identical_logits(trained):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    result, output_dir = trained
    tokenizer = AutoTokenizer.from_pretrained(output_dir)
    messages = [{"role": "user", "content": "How do I roll back a deployment?"}]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    inputs = tokenizer(text, return_tensors="pt", add_special_tokens=False)
    assert inputs["input_ids"].shape[1] > 5

    reloaded = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(output_dir / "base"), output_dir
    )
    reloaded.eval()
    result.model.eval()
    with torch.no_grad():
        expected = result.model(**inputs).logits
        actual = reloaded(**inputs).logits
        with reloaded.disable_adapter():
            base_only = reloaded(**inputs).logits
    assert torch.equal(actual, expected)
    assert not torch.allclose(base_only, expected, atol=1e-3)  # the adapter changes the answers


def test_the_tiny_base_is_the_same_model_every_time(trained):
    """Built from the configuration and a fixed seed: every run starts from identical weights."""
    import torch
    from atalaya_trainer.tiny import TINY_DIR, load_tiny
    from transformers import AutoModelForCausalLM

    _, output_dir = trained
    fresh, _ = load_tiny(TINY_DIR / "config.json")
    saved = AutoModelForCausalLM.from_pretrained(output_dir / "base")
    fresh_state, saved_state = fresh.state_dict(), saved.state_dict()
    assert fresh_state.keys() == saved_state.keys()
    assert all(torch.equal(fresh_state[key], saved_state[key]) for key in fresh_state)


def test_the_command_line_as_the_local_runner_runs_it(tmp_path):
    output_dir = tmp_path / "out"
    completed = _run(sys.executable, str(SCRIPT), *_arguments(output_dir), cwd=tmp_path)
    assert completed.returncode == 0, completed.stderr

    events = _events(completed.stdout)
    assert events[0]["event"] == "start"
    assert (events[0]["total"], events[0]["train_examples"], events[0]["device"]) == (STEPS, 26, "cpu")
    progress = [e for e in events if e["event"] == "progress"]
    assert [e["step"] for e in progress] == list(range(1, STEPS + 1))
    assert all(e["total"] == STEPS and math.isfinite(e["loss"]) for e in progress)
    evals = [e for e in events if e["event"] == "eval"]
    assert [e["step"] for e in evals] == [0, 7, 14, 20]
    assert events[-1]["event"] == "done"
    written = json.loads((output_dir / "metrics.json").read_text())
    assert events[-1]["metrics"] == written
    assert written["train_loss"] == pytest.approx(progress[-1]["loss"], abs=1e-5)
    assert written["validation_loss"] == pytest.approx(evals[-1]["validation_loss"], abs=1e-5)
    assert (output_dir / "adapter_model.safetensors").is_file()


GOOD = json.dumps(
    {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
)


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ([GOOD, GOOD, '{"messages": [{"role": "user", "content": "hi"}'], " line 3: not valid JSON"),
        ([GOOD, '{"prompt": "hi", "completion": "hello"}'], ' line 2: missing "messages"'),
        (["", GOOD, '{"messages": [{"role": "user", "content": "hi"}]}'], " line 3: no assistant message"),
        (
            [GOOD, '{"messages": [{"role": "bot", "content": "hi"}]}'],
            " line 2: message 0: role must be one of",
        ),
        (
            [GOOD, '{"messages": [{"role": "user", "content": ["hi"]}]}'],
            ' line 2: message 0: "content" must be a string',
        ),
        (["", "  "], ": no conversations (the file is empty)"),
    ],
)
def test_a_malformed_dataset_exits_2_naming_the_line(tmp_path, lines, message):
    dataset = tmp_path / "train.jsonl"
    dataset.write_text("\n".join(lines) + "\n")
    completed = _run(
        sys.executable, "-m", "atalaya_trainer", "--base-model", "tiny", "--train", str(dataset),
        "--output-dir", str(tmp_path / "out"), cwd=TRAINER,
    )  # fmt: skip
    assert completed.returncode == 2
    assert f"training dataset {dataset}{message}" in completed.stderr
    assert _events(completed.stdout) == [
        {"event": "error", "code": "bad_input", "message": completed.stderr.strip().removeprefix("error: ")}
    ]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--validation", "missing.jsonl"], "validation dataset missing.jsonl: file not found"),
        (
            ["--output-dir", "gs://bucket/adapters/1"],
            "gs:// paths are read through Cloud Storage FUSE at /gcs",
        ),
        (["--rank", "0"], "argument --rank: must be a positive integer, got 0"),
        (["--dropout", "1"], "argument --dropout: must be in [0, 1), got 1"),
    ],
)
def test_bad_arguments_exit_2(tmp_path, arguments, message):
    completed = _run(
        sys.executable, str(SCRIPT), "--base-model", "tiny", "--train", str(TRAIN),
        "--output-dir", str(tmp_path / "out"), *arguments, cwd=tmp_path,
    )  # fmt: skip
    assert completed.returncode == 2
    assert message in completed.stderr


def test_without_the_training_dependencies_it_exits_3_saying_what_to_install(tmp_path):
    """A Python environment without the `train` extra (a fresh virtual environment), as a console installed
    without it would run the trainer."""
    bare = tmp_path / "bare"
    venv.create(bare, with_pip=False)
    python = str(bare / "bin" / "python")
    probe = _run(python, "-c", "import importlib.util as u; print(u.find_spec('torch'))", cwd=tmp_path)
    assert probe.stdout.strip() == "None"

    completed = _run(python, str(SCRIPT), *_arguments(tmp_path / "out"), cwd=tmp_path)
    assert completed.returncode == 3
    assert "missing: torch, transformers, peft, safetensors, tokenizers" in completed.stderr
    assert "pip install -e '.[train]' -c deploy/trainer/constraints.txt" in completed.stderr
    assert not (tmp_path / "out").exists()


def test_the_image_installs_the_train_extra_and_copies_what_exists():
    """No container engine runs here: what can be checked offline about deploy/trainer/Dockerfile."""

    import tomllib

    dockerfile = (TRAINER / "Dockerfile").read_text()
    allowed = [
        line for line in (TRAINER / "Dockerfile.dockerignore").read_text().split() if line.startswith("!")
    ]
    assert allowed == ["!pyproject.toml", "!deploy/trainer/"]
    for line in re.findall(r"^COPY (.+)$", dockerfile, flags=re.M):
        *sources, _ = line.split()
        for source in sources:
            assert (ROOT / source).exists(), source
            assert source == "pyproject.toml" or source.startswith("deploy/trainer/"), source

    # The requirements the image installs are the `train` extra, pinned by the same constraints file.
    command = re.search(r'python -c "(.+?)" \\', dockerfile).group(1)
    listed = subprocess.run(
        [sys.executable, "-c", command], cwd=ROOT, capture_output=True, text=True, check=True
    )
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["train"]
    assert listed.stdout.split("\n")[:-1] == extra
    assert "torch==2.13.0" in extra
    assert "torch==2.13.0" in (TRAINER / "constraints.txt").read_text().split("\n")
    assert re.search(r"pip install .*-r requirements.txt -c constraints.txt", dockerfile)
    assert dockerfile.rstrip().endswith('ENTRYPOINT ["python", "-m", "atalaya_trainer"]')


def test_a_local_hugging_face_model_folder_as_the_base(trained, tmp_path):
    """The path a real base model takes (AutoTokenizer, AutoModelForCausalLM.from_pretrained, the saved chat
    template), here with the tiny base that the first run saved: no base is copied beside this adapter."""
    from atalaya_trainer.data import read_conversations
    from atalaya_trainer.training import TrainingOptions, train

    _, first_output = trained
    base = first_output / "base"
    result = train(
        TrainingOptions(
            base_model=str(base),
            train=read_conversations(TRAIN, label="training"),
            validation=None,
            output_dir=tmp_path,
            max_steps=3,
            target_modules="c_attn,c_fc",
        )
    )
    assert (result.metrics["steps"], result.metrics["base_model_dir"], result.metrics["validation_loss"]) == (
        3,
        None,
        None,
    )
    config = json.loads((tmp_path / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == str(base)
    assert sorted(config["target_modules"]) == ["c_attn", "c_fc"]
    assert not (tmp_path / "base").exists()


@pytest.mark.parametrize(
    ("base_model", "target_modules", "message"),
    [
        ("no-such-org/no-such-model", None, "base model 'no-such-org/no-such-model' could not be loaded"),
        ("tiny", "q_proj", "LoRA could not be applied (check --target-modules)"),
    ],
)
def test_a_base_model_or_target_modules_that_cannot_be_used_is_bad_input(
    tmp_path, base_model, target_modules, message
):
    from atalaya_trainer.data import BadInput, read_conversations
    from atalaya_trainer.training import TrainingOptions, train

    options = TrainingOptions(
        base_model=base_model,
        train=read_conversations(TRAIN, label="training"),
        validation=None,
        output_dir=tmp_path / "out",
        max_steps=1,
        target_modules=target_modules,
    )
    with pytest.raises(BadInput, match=re.escape(message)):
        train(options)
