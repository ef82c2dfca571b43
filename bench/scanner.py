#!/usr/bin/env python3
"""PII scanner benchmark: the local scanner beside Presidio, same corpus, same run, single-threaded.

    .venv/bin/python bench/scanner.py --samples 5000 --seed 7

What one run does:

1. Generates the labelled corpus (`bench/pii_corpus.py`, Faker es_ES and en_US, reproducible from
   --seed): prompts and answers of about 0.9 KB with planted identifiers and hard negatives.
2. Runs `apps.cloud.pii.local.LocalScanner.find` over every text, --repeat times; the throughput is
   the best pass, in CPU time of this single thread (the machine is shared, CPU time is what a
   second process cannot steal), wall time beside it. `scan` (detection and redaction) is timed too.
3. Runs Presidio in its own interpreter (`.venv-bench`, or `.venv-presidio`, created with pip on
   first use: Presidio never goes into the project's .venv), as `bench/scanner.py --role presidio`:
   `presidio-analyzer` with the NoOp NLP engine (no spaCy model: regex recognizers only) and
   `tldextract` built with `suffix_list_urls=()` (it goes to the network otherwise). Its registry
   holds only the recognizers for our infoTypes — email, phone (python-phonenumbers, its default
   regions plus ES, since the corpus is half Spanish), credit card, IBAN, IP, US SSN, and the
   Spanish NIF (DNI) and NIE ones loaded for the analysis language — with their context words and
   default scores; every result at its default score threshold counts. Fewer recognizers than its
   default registry make Presidio faster, not slower. Same timing rules, one pass plus a warm-up.
4. Scores both span by span (a finding is correct when its infoType matches and it overlaps a
   planted span; a planted span is found when such a finding overlaps it), per infoType, mapping
   Presidio's names: CREDIT_CARD → CREDIT_CARD_NUMBER, US_SSN → US_SOCIAL_SECURITY_NUMBER, ES_NIF →
   SPAIN_DNI_NUMBER, ES_NIE → SPAIN_NIE_NUMBER; infoTypes Presidio has no recognizer for
   (SPAIN_NIF_NUMBER for companies, AUTH_TOKEN) are n/a.
5. Prints the table, the throughputs and their ratio, and the targets: at least 20× Presidio's
   throughput, and recall and precision at least Presidio's for every infoType. Exit status 1 when
   a target is missed.

Options: --no-presidio (the local scanner alone), --presidio-python PATH (an interpreter that has
presidio-analyzer), --json PATH (the numbers, for the closing notes).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PRESIDIO_TO_DLP = {
    "EMAIL_ADDRESS": "EMAIL_ADDRESS",
    "PHONE_NUMBER": "PHONE_NUMBER",
    "CREDIT_CARD": "CREDIT_CARD_NUMBER",
    "IBAN_CODE": "IBAN_CODE",
    "IP_ADDRESS": "IP_ADDRESS",
    "US_SSN": "US_SOCIAL_SECURITY_NUMBER",
    "ES_NIF": "SPAIN_DNI_NUMBER",
    "ES_NIE": "SPAIN_NIE_NUMBER",
}
PRESIDIO_REQUIREMENT = "presidio-analyzer>=2.2,<3"


# --- Presidio, in its own interpreter -------------------------------------------------------------


def presidio_role(input_path: Path, output_path: Path) -> int:
    """Runs inside the Presidio environment: stdlib and presidio only (no Faker, no Django)."""
    import tldextract

    offline = tldextract.TLDExtract(suffix_list_urls=())  # the bundled suffix list, no network
    tldextract.extract = offline
    from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
    from presidio_analyzer.nlp_engine import NoOpNlpEngine
    from presidio_analyzer.predefined_recognizers import (
        CreditCardRecognizer,
        EmailRecognizer,
        EsNieRecognizer,
        EsNifRecognizer,
        IbanRecognizer,
        IpRecognizer,
        PhoneRecognizer,
        UsSsnRecognizer,
    )

    language = "en"
    registry = RecognizerRegistry(supported_languages=[language])
    for recognizer in (
        EmailRecognizer(supported_language=language),
        PhoneRecognizer(
            supported_language=language,
            supported_regions=(*PhoneRecognizer.DEFAULT_SUPPORTED_REGIONS, "ES"),
        ),
        CreditCardRecognizer(supported_language=language),
        IbanRecognizer(supported_language=language),
        IpRecognizer(supported_language=language),
        UsSsnRecognizer(supported_language=language),
        EsNifRecognizer(supported_language=language),
        EsNieRecognizer(supported_language=language),
    ):
        registry.add_recognizer(recognizer)
    nlp_engine = NoOpNlpEngine(models=[{"lang_code": language, "model_name": "none"}])
    nlp_engine.load()
    engine = AnalyzerEngine(registry=registry, nlp_engine=nlp_engine, supported_languages=[language])
    entities = sorted(PRESIDIO_TO_DLP)

    texts = [json.loads(line)["text"] for line in input_path.read_text(encoding="utf-8").splitlines()]
    for text in texts[:20]:  # warm-up: lazy compilation, the phonenumbers metadata
        engine.analyze(text, language=language, entities=entities)
    results = []
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for text in texts:
        results.append(engine.analyze(text, language=language, entities=entities))
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    import presidio_analyzer

    version = getattr(presidio_analyzer, "__version__", None)
    if version is None:
        from importlib.metadata import version as dist_version

        version = dist_version("presidio-analyzer")
    findings = [[[r.entity_type, r.start, r.end, round(r.score, 3)] for r in found] for found in results]
    output_path.write_text(json.dumps({"cpu": cpu, "wall": wall, "version": version, "findings": findings}))
    return 0


def _has_presidio(python: Path) -> bool:
    if not python.exists():
        return False
    probe = subprocess.run(
        [str(python), "-c", "import presidio_analyzer, tldextract"], capture_output=True, timeout=120
    )
    return probe.returncode == 0


def presidio_python(explicit: str | None) -> Path:
    """An interpreter with presidio-analyzer: the given one, .venv-bench, .venv-presidio, or
    .venv-bench created now (PyPI) — never the project's .venv."""
    if explicit:
        return Path(explicit)
    for venv in (".venv-bench", ".venv-presidio"):
        python = ROOT / venv / "bin" / "python"
        if _has_presidio(python):
            return python
    venv = ROOT / ".venv-bench"
    python = venv / "bin" / "python"
    if not python.exists():
        print(f"creating {venv.relative_to(ROOT)} for Presidio …", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    print(f"installing {PRESIDIO_REQUIREMENT} into {venv.relative_to(ROOT)} …", flush=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", PRESIDIO_REQUIREMENT],
        check=True,
    )
    return python


def run_presidio(python: Path, texts: list[str]) -> dict:
    with tempfile.TemporaryDirectory(prefix="pii-bench-") as tmp:
        input_path, output_path = Path(tmp) / "texts.jsonl", Path(tmp) / "presidio.json"
        input_path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")
        env = {**os.environ, "PYTHONPATH": "", "TLDEXTRACT_CACHE": str(Path(tmp) / "tld")}
        subprocess.run(
            [str(python), str(Path(__file__).resolve()), "--role", "presidio", "--input", str(input_path),
             "--output", str(output_path)],
            check=True,
            env=env,
        )  # fmt: skip
        return json.loads(output_path.read_text())


# --- the local scanner ----------------------------------------------------------------------------


def run_local(texts: list[str], repeat: int) -> dict:
    sys.path.insert(0, str(ROOT))
    from apps.cloud.pii.base import RedactionMode, RedactionPolicy
    from apps.cloud.pii.local import LocalScanner

    scanner = LocalScanner()
    for text in texts[:200]:  # warm-up
        scanner.find(text)
    passes = []
    findings: list = []
    for _ in range(repeat):
        cpu0, wall0 = time.process_time(), time.perf_counter()
        found = [scanner.find(text) for text in texts]
        passes.append((time.process_time() - cpu0, time.perf_counter() - wall0))
        findings = found
    policy = RedactionPolicy(mode=RedactionMode.TOKEN, token_key=b"bench")
    cpu0 = time.process_time()
    scanner.scan(texts, policy)
    scan_cpu = time.process_time() - cpu0
    cpu, wall = min(passes)
    return {
        "cpu": cpu,
        "wall": wall,
        "cpu_passes": [p[0] for p in passes],
        "scan_cpu": scan_cpu,
        "findings": [[[f.info_type, f.start, f.end, f.likelihood] for f in found] for found in findings],
    }


# --- report ---------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=3, help="passes of the local scanner (best counts)")
    parser.add_argument("--no-presidio", action="store_true")
    parser.add_argument("--presidio-python")
    parser.add_argument("--json", type=Path, help="write the numbers here")
    parser.add_argument("--role", choices=["main", "presidio"], default="main", help=argparse.SUPPRESS)
    parser.add_argument("--input", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--output", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.role == "presidio":
        return presidio_role(args.input, args.output)

    sys.path.insert(0, str(ROOT))
    from bench.pii_corpus import INFO_TYPES, generate, score

    t0 = time.perf_counter()
    samples = generate(args.samples, args.seed)
    texts = [s.text for s in samples]
    size = sum(len(t.encode()) for t in texts)
    planted = sum(len(s.spans) for s in samples)
    print(
        f"corpus: {len(samples)} texts (seed {args.seed}), {size / 1e6:.2f} MB, mean {size / len(samples):.0f} bytes, "
        f"{planted} planted identifiers, generated in {time.perf_counter() - t0:.1f} s"
    )

    local = run_local(texts, args.repeat)
    local_scores = score(samples, [[(t, a, b) for t, a, b, _ in found] for found in local["findings"]])

    presidio = None
    if not args.no_presidio:
        python = presidio_python(args.presidio_python)
        print(
            f"Presidio: {python.relative_to(ROOT) if python.is_relative_to(ROOT) else python} …", flush=True
        )
        presidio = run_presidio(python, texts)
        mapped = [
            [(PRESIDIO_TO_DLP[e], a, b) for e, a, b, _ in found if e in PRESIDIO_TO_DLP]
            for found in presidio["findings"]
        ]
        presidio_scores = score(samples, mapped)
        covered = set(PRESIDIO_TO_DLP.values())

    print()
    header = f"{'infoType':28s} {'planted':>7s} | {'local recall':>12s} {'precision':>9s}"
    if presidio:
        header += f" | {'Presidio recall':>15s} {'precision':>9s}"
    print(header)
    print("-" * len(header))
    failures = []
    for info_type in INFO_TYPES:
        ls = local_scores[info_type]
        line = f"{info_type:28s} {ls.planted:7d} | {ls.recall:12.4f} {ls.precision:9.4f}"
        if presidio:
            if info_type in covered:
                ps = presidio_scores[info_type]
                line += f" | {ps.recall:15.4f} {ps.precision:9.4f}"
                if ls.recall < ps.recall or ls.precision < ps.precision:
                    failures.append(f"{info_type}: below Presidio")
            else:
                line += f" | {'n/a':>15s} {'n/a':>9s}"
        if ls.recall < 0.98 or ls.precision < 0.95:
            failures.append(f"{info_type}: below recall 0.98 / precision 0.95")
        print(line)

    n = len(texts)

    def rate(cpu: float) -> str:
        return f"{n / cpu:10.0f} texts/s {size / cpu / 1e6:8.2f} MB/s"

    print()
    print(f"{'':28s} {'CPU s':>8s} {'wall s':>8s}   throughput (single thread, CPU time)")
    print(f"{'local scanner (find)':28s} {local['cpu']:8.3f} {local['wall']:8.3f}   {rate(local['cpu'])}")
    print(
        f"{'local scanner (scan+redact)':28s} {local['scan_cpu']:8.3f} {'':>8s}   {rate(local['scan_cpu'])}"
    )
    result = {
        "samples": n,
        "seed": args.seed,
        "bytes": size,
        "local": {"cpu": local["cpu"], "wall": local["wall"], "scan_cpu": local["scan_cpu"]},
        "local_scores": {t: vars(s) for t, s in local_scores.items()},
    }
    if presidio:
        print(
            f"{'Presidio ' + presidio['version']:28s} {presidio['cpu']:8.3f} {presidio['wall']:8.3f}   {rate(presidio['cpu'])}"
        )
        ratio = presidio["cpu"] / local["cpu"]
        wall_ratio = presidio["wall"] / local["wall"]
        print(
            f"\nthroughput ratio local / Presidio: {ratio:.1f}× (CPU time), {wall_ratio:.1f}× (wall time); target ≥ 20×"
        )
        if ratio < 20:
            failures.append(f"throughput ratio {ratio:.1f}× < 20×")
        result.update(
            presidio={"version": presidio["version"], "cpu": presidio["cpu"], "wall": presidio["wall"]},
            presidio_scores={t: vars(s) for t, s in presidio_scores.items() if t in covered},
            ratio=ratio,
        )
    spread = local["cpu_passes"]
    if len(spread) > 1:
        print(
            f"local passes (CPU s): {', '.join(f'{x:.3f}' for x in spread)} (median {statistics.median(spread):.3f})"
        )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    if failures:
        print("\nTARGETS MISSED: " + "; ".join(failures))
        return 1
    print("\nall targets met" + ("" if presidio else " (local quality only: --no-presidio)"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
