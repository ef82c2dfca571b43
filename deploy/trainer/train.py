"""The trainer's script entry point: ``python deploy/trainer/train.py --help`` (see README.md beside it)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from atalaya_trainer.cli import main

if __name__ == "__main__":
    sys.exit(main())
