#!/usr/bin/env python3
"""`make security`: pip-audit over the installed environment (editable installs, i.e. Atalaya itself,
skipped), with a summary. Fails on any known vulnerability that is not listed below with its reason.

pip-audit asks PyPI (https://pypi.org/pypi/<name>/<version>/json) for each installed package. Where that
answers "not found" for a package (a mirror or proxy without those pages, or a package that is not on
PyPI) the package is not audited: this says how many were not, loudly, but does not fail, because no
fix is possible from here. A run where nothing at all could be audited says so in its last line.

Usage: scripts/pip_audit.py [path/to/python]   (default: the Python running this script)
"""

import json
import subprocess
import sys
from pathlib import Path

# Known vulnerabilities accepted for now, each with its reason: {"ID": "why it does not apply / until when"}.
IGNORED: dict[str, str] = {}


def main() -> int:
    python = sys.argv[1] if len(sys.argv) > 1 else sys.executable
    pip_audit = Path(python).with_name("pip-audit")
    command = [str(pip_audit), "--skip-editable", "--progress-spinner", "off", "--format", "json"]
    for vuln_id in IGNORED:
        command += ["--ignore-vuln", vuln_id]
    result = subprocess.run(command, capture_output=True, text=True)  # noqa: S603 - our own command line
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError:
        print(result.stdout + result.stderr, file=sys.stderr)
        print("pip-audit gave no report (see above).", file=sys.stderr)
        return 1
    dependencies = report.get("dependencies", [])
    skipped = [dep for dep in dependencies if "skip_reason" in dep]
    vulnerable = [dep for dep in dependencies if dep.get("vulns")]
    audited = len(dependencies) - len(skipped)
    for dep in vulnerable:
        for vuln in dep["vulns"]:
            fixes = ", ".join(vuln.get("fix_versions", [])) or "no fixed version yet"
            print(f"VULNERABLE {dep['name']} {dep['version']}: {vuln['id']} (fixed in: {fixes})")
    for vuln_id, reason in IGNORED.items():
        print(f"ignored {vuln_id}: {reason}")
    print(
        f"pip-audit: {audited} of {len(dependencies)} installed packages audited, {len(vulnerable)} vulnerable."
    )
    if skipped:
        names = ", ".join(sorted(f"{dep['name']} {dep.get('version', '')}".strip() for dep in skipped))
        print(f"WARNING: {len(skipped)} packages could not be audited (PyPI had no page for them): {names}")
        if audited == 0:
            print("WARNING: no package could be audited: the vulnerability check did not happen here.")
    return 1 if vulnerable or result.returncode not in (0, 1) else 0


if __name__ == "__main__":
    sys.exit(main())
