"""Offline checks of deploy/: what can be validated here, where no container engine, Helm, Terraform or
cloud can run. See deploy/README.md, "What was validated here".

- Dockerfile: multi-stage, non-root, no build tools or secrets in the runtime stage, HEALTHCHECK, the
  gunicorn command, collectstatic at build, every COPY source present;
- compose.yaml: parses; the services, their commands and health checks; migrations before the processes;
  `$` interpolation well formed;
- the Helm chart: Chart.yaml and values.yaml parse; template actions balanced; every `.Values` path and
  every `include` is defined; the invariants (one beat with Recreate, migrations as a pre-install and
  pre-upgrade hook, probes on /healthz and /readyz, non-root);
- terraform/: parses with python-hcl2 when it is installed, else a lexical check (balanced brackets
  outside strings and comments); every `var.`, `local.` and resource reference is declared; the provider
  is pinned; the least-privilege roles;
- every environment variable the deploy files set is one the code reads.
"""

import copy
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.helm_render import Renderer, TemplateError, _lex, _parse

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
CHART = DEPLOY / "helm" / "atalaya"
TERRAFORM = DEPLOY / "terraform"

# Read by a process, not by Django settings: the Python runtime, gunicorn's worker count (on its command
# line), and the settings module chosen in console/wsgi.py, celery.py and manage.py.
PROCESS_ENV = {"PATH", "PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED", "WEB_CONCURRENCY"}
PROCESS_ENV_PREFIXES = ("PIP_",)

WEB_COMMAND = "gunicorn console.wsgi -b 0.0.0.0:8000 -w ${WEB_CONCURRENCY:-2}"


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def settings_env_names() -> set[str]:
    """Every NAME the code reads: env.str("NAME"), environ.Env().str("NAME"), os.environ.get("NAME")…"""
    pattern = re.compile(r"""(?:\benv|Env\(\)|os\.environ)\.\w+\(\s*["']([A-Z][A-Z0-9_]+)["']""")
    names: set[str] = set()
    for folder in ("console", "apps", "workers"):
        for path in (ROOT / folder).rglob("*.py"):
            names.update(pattern.findall(_read(path)))
    names.update(re.findall(r"""os\.environ\[["']([A-Z][A-Z0-9_]+)["']\]""", _read(ROOT / "manage.py")))
    names.update(re.findall(r"""os\.environ\.\w+\(\s*["']([A-Z][A-Z0-9_]+)["']""", _read(ROOT / "manage.py")))
    return names


KNOWN_ENV = settings_env_names()


def assert_known_env(names: set[str], where: str) -> None:
    unknown = {
        n
        for n in names
        if n not in KNOWN_ENV and n not in PROCESS_ENV and not n.startswith(PROCESS_ENV_PREFIXES)
    }
    assert not unknown, f"{where} sets variables nothing reads: {sorted(unknown)}"


def test_the_settings_scan_finds_the_required_variables():
    required = {"DJANGO_SECRET_KEY", "DJANGO_ALLOWED_HOSTS", "DATABASE_URL", "CELERY_BROKER_URL", "CACHE_URL"}
    assert required <= KNOWN_ENV
    assert {
        "ATALAYA_STAGING_KEYS",
        "ATALAYA_PII_TOKEN_KEY",
        "ATALAYA_VAR_DIR",
        "DJANGO_SETTINGS_MODULE",
    } <= KNOWN_ENV


# Dockerfile


def dockerfile_stages() -> list[dict[str, Any]]:
    """[{"from": "python:3.11-slim AS builder", "name": "builder", "instructions": [(op, args), …]}]"""
    text = re.sub(r"\\\n", " ", _read(DEPLOY / "Dockerfile"))
    args: dict[str, str] = {}
    stages: list[dict[str, Any]] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        op, _, rest = line.partition(" ")
        op = op.upper()
        rest = re.sub(r"\s+", " ", rest.strip())
        if op == "ARG" and not stages and "=" in rest:
            key, _, value = rest.partition("=")
            args[key] = value
        if op == "FROM":
            image = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), rest.split()[0])
            name = rest.split()[-1] if " AS " in rest.upper() else ""
            stages.append({"image": image, "name": name.lower(), "instructions": []})
        elif stages:
            stages[-1]["instructions"].append((op, rest))
    return stages


def test_dockerfile_is_multi_stage_on_python_311_slim():
    stages = dockerfile_stages()
    assert [s["name"] for s in stages] == ["builder", "runtime"]
    for stage in stages:
        assert stage["image"].startswith("python:3.11-slim"), stage["image"]
    builder, runtime = stages
    assert any(op == "RUN" and "python -m venv /opt/venv" in a for op, a in builder["instructions"])
    assert ("COPY", "--from=builder /opt/venv /opt/venv") in runtime["instructions"]


def test_dockerfile_runtime_is_non_root_without_build_tools():
    runtime = dockerfile_stages()[-1]["instructions"]
    users = [a for op, a in runtime if op == "USER"]
    assert users, "the runtime stage must switch to a non-root USER"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}
    assert user.isdigit(), "a numeric USER lets Kubernetes check runAsNonRoot"
    runs = " ".join(a for op, a in runtime if op == "RUN")
    for tool in ("build-essential", "gcc", "apt-get install", "curl", "wget"):
        assert tool not in runs, f"{tool} in the runtime stage"
    # The last USER comes after the last RUN: nothing runs as root after it, and the process does not.
    last_user = max(i for i, (op, _) in enumerate(runtime) if op == "USER")
    assert all(op != "RUN" for op, _ in runtime[last_user:])


def test_dockerfile_env_healthcheck_command_and_static():
    runtime = dockerfile_stages()[-1]["instructions"]
    env_text = " ".join(a for op, a in runtime if op == "ENV")
    env = dict(re.findall(r"(\w+)=(\S+)", env_text))
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["PYTHONUNBUFFERED"] == "1"
    assert env["DJANGO_SETTINGS_MODULE"] == "console.settings.production"
    assert_known_env(set(env), "Dockerfile ENV")

    healthchecks = [a for op, a in runtime if op == "HEALTHCHECK"]
    assert len(healthchecks) == 1 and "/healthz" in healthchecks[0]
    assert "'Host'" in healthchecks[0], "the probe must send an allowed Host header"

    cmd = [a for op, a in runtime if op == "CMD"]
    assert cmd and WEB_COMMAND in cmd[-1]
    assert ("EXPOSE", "8000") in runtime

    collect = [a for op, a in runtime if op == "RUN" and "collectstatic" in a]
    assert collect and "--no-input" in collect[0]
    # STATIC_ROOT is under ATALAYA_VAR_DIR: collected at build, where the runtime looks for it.
    assert env["ATALAYA_VAR_DIR"] == "/app/var"


def test_dockerfile_bakes_no_secret():
    for stage in dockerfile_stages():
        for op, args in stage["instructions"]:
            if op in {"ENV", "ARG"}:
                for name in re.findall(r"(\w+)=", args):
                    assert not re.search(r"SECRET|PASSWORD|TOKEN|_KEY", name), f"{op} {name} bakes a secret"
    # The one secret-looking value is the throwaway key for collectstatic, inline in that RUN only.
    text = _read(DEPLOY / "Dockerfile")
    for value in re.findall(r"DJANGO_SECRET_KEY=(\S+)", text):
        assert "not-a-secret" in value


def test_dockerfile_copies_what_exists_and_the_context_is_filtered():
    ignore = _read(DEPLOY / "Dockerfile.dockerignore").split()
    assert ignore[0] == "**" or "**" in ignore
    assert "**/.env" in ignore
    for stage in dockerfile_stages():
        for op, args in stage["instructions"]:
            if op == "COPY" and not args.startswith("--from"):
                *sources, _dest = [a for a in args.split() if not a.startswith("--")]
                for source in sources:
                    assert (ROOT / source).exists(), source
                    assert f"!{source.rstrip('/')}" in {i.rstrip("/") for i in ignore}, f"{source} is ignored"


# compose.yaml


def compose() -> dict[str, Any]:
    return yaml.safe_load(_read(DEPLOY / "compose.yaml"))


def _command(service: dict[str, Any]) -> str:
    command = service["command"]
    text = command if isinstance(command, str) else " ".join(command)
    return text.replace("$$", "$")


APP_SERVICES = ("migrate", "web", "worker", "beat")


def test_compose_services_and_commands():
    services = compose()["services"]
    assert {"postgres", "redis", "web", "worker", "beat", "mlflow", "migrate"} <= set(services)
    assert WEB_COMMAND in _command(services["web"])
    assert "celery -A console worker" in _command(services["worker"])
    assert "celery -A console beat" in _command(services["beat"])
    assert _command(services["migrate"]) == "python manage.py migrate --no-input"
    assert services["migrate"]["restart"] == "no"
    assert "mlflow server" in _command(services["mlflow"])
    # Exactly one beat.
    assert services["beat"].get("deploy", {}).get("replicas", 1) == 1
    for name in APP_SERVICES:
        assert services[name]["build"]["dockerfile"] == "deploy/Dockerfile"
        assert (DEPLOY / services[name]["build"]["context"] / "deploy" / "Dockerfile").exists()


def test_compose_commands_match_the_local_runner_and_makefile():
    """The same processes as `make run` (scripts/run_local.py) and its migrate step."""
    runner = _read(ROOT / "scripts" / "run_local.py")
    services = compose()["services"]
    for kind in ("worker", "beat"):
        assert (
            f'"-A",\n            "console",\n            "{kind}"' in runner
            or f'"-A", "console", "{kind}"' in runner
        )
        assert f"celery -A console {kind}" in _command(services[kind])
    makefile = _read(ROOT / "Makefile")
    migrate = re.search(r"manage\.py migrate[^\n]*", makefile)
    if migrate:  # the Makefile's own flags, so both run the same migration step
        assert _command(services["migrate"]).endswith(migrate.group(0).strip())


def test_compose_ordering_and_health():
    services = compose()["services"]
    for name in ("web", "worker", "beat"):
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    for name in ("postgres", "redis"):
        assert services["migrate"]["depends_on"][name]["condition"] == "service_healthy"
        assert services[name]["healthcheck"]["test"]
    assert "/healthz" in " ".join(services["web"]["healthcheck"]["test"])
    assert "inspect ping" in " ".join(services["worker"]["healthcheck"]["test"])
    # The image's HEALTHCHECK is for web: processes without HTTP switch it off or replace it.
    for name in ("beat", "migrate"):
        assert services[name]["healthcheck"] == {"disable": True}


def test_compose_environment_is_read_by_the_settings():
    services = compose()["services"]
    for name in APP_SERVICES:
        env = services[name]["environment"]
        assert env["DJANGO_SETTINGS_MODULE"] == "console.settings.production"
        for required in (
            "DJANGO_SECRET_KEY",
            "DJANGO_ALLOWED_HOSTS",
            "DATABASE_URL",
            "CELERY_BROKER_URL",
            "CACHE_URL",
        ):
            assert env.get(required), f"{name} lacks {required}"
        assert env["CELERY_BROKER_URL"].startswith("redis://redis:")
        assert env["DATABASE_URL"].startswith("postgres://") and "@postgres:5432/" in env["DATABASE_URL"]
        assert_known_env(set(env), f"compose service {name}")


def test_compose_interpolation_is_well_formed_and_documented():
    text = _read(DEPLOY / "compose.yaml")
    unescaped = re.sub(r"\$\$", "", text)
    for match in re.finditer(r"\$(\{[^}]*\}|.)", unescaped):
        assert re.fullmatch(r"\{[A-Z_][A-Z0-9_]*(?::?[-?][^}]*)?\}", match.group(1)), match.group(0)
    example = _read(DEPLOY / ".env.example")
    for name in re.findall(r"\$\{([A-Z_][A-Z0-9_]*):\?", unescaped):
        assert re.search(rf"^{name}=", example, re.M), f"{name} is required but not in deploy/.env.example"


# Helm chart


def chart_templates() -> dict[str, str]:
    return {p.name: _read(p) for p in sorted((CHART / "templates").iterdir()) if p.is_file()}


def values() -> dict[str, Any]:
    return yaml.safe_load(_read(CHART / "values.yaml"))


def test_chart_metadata_and_values_parse():
    chart = yaml.safe_load(_read(CHART / "Chart.yaml"))
    assert chart["apiVersion"] == "v2"
    assert chart["name"] == "atalaya"
    assert re.fullmatch(r"\d+\.\d+\.\d+", chart["version"])
    assert isinstance(values(), dict)


def _value_defined(data: Any, path: list[str]) -> bool:
    for part in path:
        if not isinstance(data, dict) or part not in data:
            return False
        data = data[part]
    return True


def test_chart_templates_reference_only_defined_values_and_includes():
    data = values()
    templates = chart_templates()
    defined = set()
    for text in templates.values():
        defined.update(re.findall(r'\{\{-?\s*define\s+"([^"]+)"', text))
    for name, text in templates.items():
        for path in re.findall(r"\.Values((?:\.[A-Za-z_][A-Za-z0-9_]*)+)", text):
            assert _value_defined(data, path.strip(".").split(".")), (
                f"{name}: .Values{path} is not in values.yaml"
            )
        for include in re.findall(r'include\s+"([^"]+)"', text):
            assert include in defined, f"{name}: include {include!r} is not defined"


def test_chart_template_actions_are_balanced():
    for name, text in chart_templates().items():
        assert text.count("{{") == text.count("}}"), f"{name}: unbalanced {{{{ }}}}"
        actions = re.findall(r"\{\{-?\s*(\w+)", text)
        opened = sum(1 for a in actions if a in {"if", "range", "with", "define"})
        closed = sum(1 for a in actions if a == "end")
        assert opened == closed, f"{name}: {opened} blocks opened, {closed} closed"


def _static_yaml(text: str) -> Any:
    """The template with its actions taken out, where that leaves plain YAML (no nindent lines)."""
    kept = [line for line in text.splitlines() if not re.fullmatch(r"\s*\{\{.*\}\}\s*", line)]
    return yaml.safe_load(re.sub(r"\{\{[^}]*\}\}", "x", "\n".join(kept)))


def test_chart_workloads():
    templates = chart_templates()
    beat = templates["beat-deployment.yaml"]
    assert re.search(r"^  replicas: 1$", beat, re.M)
    assert re.search(r"^  strategy:\n    type: Recreate$", beat, re.M)
    assert "celery" in beat and '"beat"' in beat
    assert (
        "worker" in templates["worker-deployment.yaml"]
        and "inspect ping" in templates["worker-deployment.yaml"]
    )

    web = templates["web-deployment.yaml"]
    assert "exec gunicorn console.wsgi -b 0.0.0.0:{{ .Values.web.port }} -w ${WEB_CONCURRENCY:-2}" in web
    probes = dict(re.findall(r"(\w+Probe):\s*\n\s*httpGet:\s*\n\s*path: (\S+)", web))
    assert probes == {"startupProbe": "/healthz", "livenessProbe": "/healthz", "readinessProbe": "/readyz"}
    assert web.count("name: Host") == 3

    job = templates["migrations-job.yaml"]
    assert "helm.sh/hook: pre-install,pre-upgrade" in job
    assert '["python", "manage.py", "migrate", "--no-input"]' in job
    # What the Job reads must exist before it: the ConfigMap, Secret and ServiceAccount are earlier hooks.
    for name in ("configmap.yaml", "secret.yaml", "serviceaccount.yaml"):
        assert "helm.sh/hook: pre-install,pre-upgrade" in templates[name]
        weight = re.search(r'hook-weight: "(-?\d+)"', templates[name])
        assert weight and int(weight.group(1)) < 0

    assert "kind: HorizontalPodAutoscaler" in templates["web-hpa.yaml"]
    assert "-web" in _static_yaml(templates["web-hpa.yaml"])["spec"]["scaleTargetRef"]["name"]
    assert "kind: PodDisruptionBudget" in templates["web-pdb.yaml"]
    for name in (
        "web-deployment.yaml",
        "worker-deployment.yaml",
        "beat-deployment.yaml",
        "migrations-job.yaml",
    ):
        text = templates[name]
        for needed in (
            ".Values.podSecurityContext",
            ".Values.securityContext",
            "resources:",
            "atalaya.envFrom",
        ):
            assert needed in text, f"{name} lacks {needed}"


def test_chart_values_are_safe_and_known():
    data = values()
    assert data["podSecurityContext"]["runAsNonRoot"] is True
    assert data["podSecurityContext"]["runAsUser"] != 0
    assert data["securityContext"]["allowPrivilegeEscalation"] is False
    assert data["securityContext"]["readOnlyRootFilesystem"] is True
    assert data["web"]["autoscaling"]["minReplicas"] >= 2
    for kind in ("web", "worker", "beat", "migrations"):
        assert data[kind]["resources"]["requests"] and data[kind]["resources"]["limits"]["memory"]
    assert data["config"]["DJANGO_SETTINGS_MODULE"] == "console.settings.production"
    assert_known_env(set(data["config"]), "values.yaml config")
    assert_known_env(set(data["secrets"]["values"]), "values.yaml secrets")
    assert not any(data["secrets"]["values"].values()), "no secret values in the chart's defaults"
    assert data["probeHost"] in data["config"]["DJANGO_ALLOWED_HOSTS"].split(",")


# The chart rendered (tests/deploy/helm_render.py: the Go template subset the chart uses, not Helm)


def render_chart(**overrides: Any) -> dict[str, dict[str, Any]]:
    """{"Kind/name": manifest} for the chart rendered with values.yaml and these overrides
    (dotted paths), the Secret's values filled in unless secrets.existingSecret is set."""
    data = copy.deepcopy(values())
    for key in data["secrets"]["values"]:
        data["secrets"]["values"][key] = f"test-{key.lower()}"
    for dotted, value in overrides.items():
        *parents, last = dotted.split(".")
        target = data
        for part in parents:
            target = target[part]
        target[last] = value
    renderer = Renderer(CHART, data)
    manifests: dict[str, dict[str, Any]] = {}
    for name in renderer.files:
        for doc in yaml.safe_load_all(renderer.render(name)):
            if doc:
                assert doc.get("apiVersion") and doc.get("kind"), name
                key = f"{doc['kind']}/{doc['metadata']['name']}"
                assert key not in manifests, f"{key} rendered twice"
                manifests[key] = doc
    return manifests


def _pod(manifest: dict[str, Any]) -> dict[str, Any]:
    return manifest["spec"]["template"]


def test_chart_renders_to_valid_manifests():
    manifests = render_chart()
    assert set(manifests) == {
        "ConfigMap/atalaya-config",
        "Secret/atalaya-secrets",
        "ServiceAccount/atalaya",
        "Deployment/atalaya-web",
        "Service/atalaya-web",
        "HorizontalPodAutoscaler/atalaya-web",
        "PodDisruptionBudget/atalaya-web",
        "Deployment/atalaya-worker",
        "Deployment/atalaya-beat",
        "Job/atalaya-migrate",
    }
    config = manifests["ConfigMap/atalaya-config"]["data"]
    assert all(isinstance(v, str) for v in config.values())
    assert_known_env(set(config), "the rendered ConfigMap")
    secret = manifests["Secret/atalaya-secrets"]["stringData"]
    assert_known_env(set(secret), "the rendered Secret")
    workloads = [m for m in manifests.values() if m["kind"] in {"Deployment", "Job"}]
    assert len(workloads) == 4
    for manifest in workloads:
        pod = _pod(manifest)
        if manifest["kind"] == "Deployment":
            selector = manifest["spec"]["selector"]["matchLabels"]
            assert selector.items() <= pod["metadata"]["labels"].items()
        spec = pod["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["serviceAccountName"] == "atalaya"
        mounts_needed = {v["name"] for v in spec["volumes"]}
        for container in spec["containers"]:
            assert container["image"] == "europe-docker.pkg.dev/PROJECT/atalaya/atalaya:0.1.0"
            assert container["resources"]["limits"]["memory"]
            assert container["securityContext"]["readOnlyRootFilesystem"] is True
            assert container["envFrom"] == [
                {"configMapRef": {"name": "atalaya-config"}},
                {"secretRef": {"name": "atalaya-secrets"}},
            ]
            assert {m["name"] for m in container["volumeMounts"]} == mounts_needed
            assert "/tmp" in {m["mountPath"] for m in container["volumeMounts"]}


def test_chart_rendered_web_beat_and_migrations():
    manifests = render_chart()
    web = manifests["Deployment/atalaya-web"]
    assert "replicas" not in web["spec"], "the HPA owns the replica count"
    container = _pod(web)["spec"]["containers"][0]
    assert WEB_COMMAND in container["command"][-1]
    for probe, path in (
        ("startupProbe", "/healthz"),
        ("livenessProbe", "/healthz"),
        ("readinessProbe", "/readyz"),
    ):
        get = container[probe]["httpGet"]
        assert get["path"] == path and get["port"] == "http"
        assert get["httpHeaders"] == [{"name": "Host", "value": "atalaya.example.com"}]
    web_labels = _pod(web)["metadata"]["labels"]
    hpa = manifests["HorizontalPodAutoscaler/atalaya-web"]["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "atalaya-web"}
    assert hpa["minReplicas"] >= 2 and hpa["maxReplicas"] > hpa["minReplicas"]
    pdb = manifests["PodDisruptionBudget/atalaya-web"]["spec"]
    assert pdb["selector"]["matchLabels"].items() <= web_labels.items()
    service = manifests["Service/atalaya-web"]["spec"]
    assert service["selector"].items() <= web_labels.items()
    assert service["ports"][0]["targetPort"] == "http"

    beat = manifests["Deployment/atalaya-beat"]
    assert beat["spec"]["replicas"] == 1
    assert beat["spec"]["strategy"] == {"type": "Recreate"}
    assert beat["spec"]["template"]["spec"]["containers"][0]["command"][:4] == [
        "celery",
        "-A",
        "console",
        "beat",
    ]
    worker = _pod(manifests["Deployment/atalaya-worker"])["spec"]["containers"][0]
    assert "celery -A console worker" in worker["command"][-1]

    job = manifests["Job/atalaya-migrate"]
    hooks = {k: m["metadata"].get("annotations", {}) for k, m in manifests.items()}
    assert hooks["Job/atalaya-migrate"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert _pod(job)["spec"]["restartPolicy"] == "Never"
    assert _pod(job)["spec"]["containers"][0]["command"] == ["python", "manage.py", "migrate", "--no-input"]
    job_weight = int(hooks["Job/atalaya-migrate"]["helm.sh/hook-weight"])
    for needed in ("ConfigMap/atalaya-config", "Secret/atalaya-secrets", "ServiceAccount/atalaya"):
        assert hooks[needed]["helm.sh/hook"] == "pre-install,pre-upgrade"
        assert int(hooks[needed]["helm.sh/hook-weight"]) < job_weight


def test_chart_renders_its_switches():
    manifests = render_chart(
        **{
            "secrets.existingSecret": "from-secret-manager",
            "web.autoscaling.enabled": False,
            "web.podDisruptionBudget.enabled": False,
            "migrations.enabled": False,
            "serviceAccount.create": False,
            "serviceAccount.name": "atalaya-gsa",
        }
    )
    assert "Secret/atalaya-secrets" not in manifests
    assert "HorizontalPodAutoscaler/atalaya-web" not in manifests
    assert "PodDisruptionBudget/atalaya-web" not in manifests
    assert "Job/atalaya-migrate" not in manifests
    assert not any(k.startswith("ServiceAccount/") for k in manifests)
    web = manifests["Deployment/atalaya-web"]
    assert web["spec"]["replicas"] == values()["web"]["replicas"]
    assert _pod(web)["spec"]["serviceAccountName"] == "atalaya-gsa"
    assert {"secretRef": {"name": "from-secret-manager"}} in _pod(web)["spec"]["containers"][0]["envFrom"]


def test_chart_refuses_an_empty_secret():
    data = values()
    with pytest.raises(TemplateError, match=r"secrets\.values\.\w+ is required"):
        Renderer(CHART, data).render("secret.yaml")


def test_the_renderer_fails_loudly_on_what_it_does_not_know():
    with pytest.raises(TemplateError):
        _parse(_lex("{{ if .a }}x"))
    renderer = Renderer(CHART, values())
    with pytest.raises(TemplateError, match="unknown function"):
        renderer._pipeline("lookup .Values.x", renderer.root, {"$": renderer.root})


# Terraform


def terraform_files() -> dict[str, str]:
    return {p.name: _read(p) for p in sorted(TERRAFORM.glob("*.tf"))}


def _strip_hcl(text: str) -> str:
    """The code of an HCL file with comments and string contents removed (interpolations kept),
    raising ValueError on an unterminated string or unbalanced brackets."""
    out: list[str] = []
    stack: list[str] = []  # "{", "[", "(", '"' (in a string) or "${" (an interpolation)
    pairs = {"}": "{", "]": "[", ")": "("}
    i = 0
    while i < len(text):
        c = text[i]
        in_string = bool(stack) and stack[-1] == '"'
        if in_string:
            if c == "\\":
                i += 2
                continue
            if c == "\n":
                raise ValueError("newline in a string")
            if text.startswith("${", i):
                stack.append("${")
                out.append(" ")
                i += 2
                continue
            if c == '"':
                stack.pop()
                out.append('""')
            i += 1
            continue
        if c == "#" or text.startswith("//", i):
            while i < len(text) and text[i] != "\n":
                i += 1
            continue
        if text.startswith("/*", i):
            end = text.find("*/", i)
            if end < 0:
                raise ValueError("unterminated comment")
            i = end + 2
            continue
        if c == '"':
            stack.append('"')
        elif c in "{[(":
            stack.append(c)
            out.append(c)
        elif c in "}])":
            if c == "}" and stack and stack[-1] == "${":
                stack.pop()
                out.append(" ")
            elif not stack or stack.pop() != pairs[c]:
                raise ValueError(f"unbalanced {c!r} at offset {i}")
            else:
                out.append(c)
        else:
            out.append(c)
        i += 1
    if stack:
        raise ValueError(f"unclosed {stack[-1]!r}")
    return "".join(out)


def test_terraform_parses():
    files = terraform_files()
    assert {"versions.tf", "variables.tf", "outputs.tf"} <= set(files)
    try:
        import hcl2  # type: ignore[import-not-found]
    except ImportError:  # python-hcl2 is not a dependency: the lexical check below stands in
        hcl2 = None
    for text in files.values():
        _strip_hcl(text)
        if hcl2 is not None:
            hcl2.loads(text)


def test_terraform_lexer_catches_mistakes():
    _strip_hcl('a = "${join(",", var.x)}" # }\nb = { c = [1, 2] }\n')
    for broken in ('a = "x\n', "b = { c = [1, 2 }\n", "c = {\n", 'd = "${var.x"\n'):
        with pytest.raises(ValueError):
            _strip_hcl(broken)


def test_terraform_references_are_declared():
    files = terraform_files()
    code = {name: _strip_hcl(text) for name, text in files.items()}
    everything = "\n".join(files.values())
    variables = set(re.findall(r'^variable\s+"(\w+)"', everything, re.M))
    resources = {f"{t}.{n}" for t, n in re.findall(r'^resource\s+"(\w+)"\s+"(\w+)"', everything, re.M)}
    locals_ = set()
    for block in re.findall(r"^locals\s*\{\n(.*?)^\}", everything, re.M | re.S):
        locals_.update(re.findall(r"^  (\w+)\s*=", block, re.M))
    # References live in code and in string interpolations: scan both (strings stripped of literals).
    interpolations = "\n".join(re.findall(r"\$\{([^}]*)\}", everything))
    scanned = "\n".join(code.values()) + "\n" + interpolations
    for name in set(re.findall(r"\bvar\.(\w+)", scanned)):
        assert name in variables, f"var.{name} is not declared"
    for name in set(re.findall(r"\blocal\.(\w+)", scanned)):
        assert name in locals_, f"local.{name} is not declared"
    for ref in set(re.findall(r"\b((?:google|random)_\w+\.\w+)", scanned)):
        assert ref in resources, f"{ref} is not declared"


def test_terraform_pins_the_provider():
    versions = terraform_files()["versions.tf"]
    google = re.search(
        r"google\s*=\s*\{[^}]*source\s*=\s*\"hashicorp/google\"[^}]*version\s*=\s*\"([^\"]+)\"", versions
    )
    assert google and re.match(r"~>\s*\d+\.\d+", google.group(1))
    assert re.search(r'required_version\s*=\s*">=', versions)


def test_terraform_components_and_least_privilege():
    everything = "\n".join(terraform_files().values())
    for kind in (
        "google_cloud_run_v2_service",
        "google_cloud_run_v2_job",
        "google_sql_database_instance",
        "google_redis_instance",
        "google_bigquery_dataset",
        "google_secret_manager_secret",
        "google_service_account",
    ):
        assert f'resource "{kind}"' in everything, kind
    assert "point_in_time_recovery_enabled = true" in everything
    for role in (
        "roles/dlp.user",
        "roles/bigquery.jobUser",
        "roles/aiplatform.user",
        "roles/cloudsql.client",
    ):
        assert f'"{role}"' in everything, role
    # bigquery.dataEditor on the dataset only; secretAccessor on each secret only; no basic roles.
    assert re.search(
        r'resource "google_bigquery_dataset_iam_member"[^}]*role\s*=\s*"roles/bigquery.dataEditor"',
        everything,
    )
    assert re.search(
        r'resource "google_secret_manager_secret_iam_member"[^}]*role\s*=\s*"roles/secretmanager.secretAccessor"',
        everything,
    )
    for blocks in re.findall(r'resource "google_project_iam_member"[^}]*\}', everything):
        assert "dataEditor" not in blocks and "secretAccessor" not in blocks
    for forbidden in ("roles/owner", "roles/editor", "roles/viewer"):
        assert forbidden not in everything


def test_terraform_environment_is_read_by_the_settings():
    run = terraform_files()["run.tf"]
    plain = re.search(r"plain_env = \{\n(.*?)\n  \}", run, re.S)
    assert plain
    names = set(re.findall(r"^\s+([A-Z][A-Z0-9_]+)\s*=", plain.group(1), re.M))
    secrets = set(re.findall(r'= \["([A-Z][A-Z0-9_]+)"', terraform_files()["secrets.tf"]))
    secrets |= set(re.findall(r'^\s+"([A-Z][A-Z0-9_]+)",$', terraform_files()["secrets.tf"], re.M))
    assert {
        "DJANGO_SECRET_KEY",
        "DATABASE_URL",
        "CELERY_BROKER_URL",
        "CACHE_URL",
        "ATALAYA_STAGING_KEYS",
    } <= secrets
    assert_known_env(names, "terraform plain_env")
    assert_known_env(secrets, "terraform secrets")
    assert WEB_COMMAND.replace("${", "$${") in run
    assert "/readyz" in run and "/healthz" in run


# The README


def test_deploy_readme_covers_use_backup_migrations_and_validation():
    text = _read(DEPLOY / "README.md")
    for needed in (
        "docker build -f deploy/Dockerfile",
        "docker compose -f deploy/compose.yaml",
        "helm upgrade --install",
        "terraform init",
        "pg_dump",
        "pg_restore",
        ".backup",
        "point-in-time",
        "verify_audit",
        "makemigrations --check",
        "expand",
        "contract",
        "What was validated here",
    ):
        assert needed in text, needed


def test_pyproject_is_untouched_by_deploy():
    """The image installs the dependencies from pyproject.toml: it must stay readable by tomllib."""
    deps = tomllib.loads(_read(ROOT / "pyproject.toml"))["project"]["dependencies"]
    assert any(d.lower().startswith("gunicorn") for d in deps)
    assert any(d.lower().startswith("whitenoise") for d in deps)
