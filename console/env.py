"""The one place where settings are read from the environment (django-environ).

Every setting that differs between a laptop and production is a variable here; the settings
modules only choose defaults. See README.md, "Configuration".
"""

from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(environ.Env().str("ATALAYA_VAR_DIR", default=str(BASE_DIR / "var")))

env = environ.Env()
env_file = BASE_DIR / ".env"
if env_file.exists():
    environ.Env.read_env(str(env_file))
