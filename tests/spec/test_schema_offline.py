"""The files in schemas/ work offline with a standard validator and an editor's modeline.

check-jsonschema (the real CLI, in a subprocess) is run with every proxy pointing at a
closed port, so any attempt to fetch a `$ref` over the network fails the test. It reads
one YAML document per file, so the multi-document catalog files are split first.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from backfill_ctl.spec.schema import KINDS, kind_schema

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "schemas"
SPECS = ROOT / "specs"
MODELINE = re.compile(r"#\s*yaml-language-server:\s*\$schema=(\S+)")
CLOSED = "http://127.0.0.1:9"  # the discard port: nothing listens, connections are refused


def check_jsonschema() -> str:
    found = shutil.which("check-jsonschema") or str(
        Path(sys.executable).parent / "check-jsonschema"
    )
    if not Path(found).exists():
        pytest.skip("check-jsonschema is not installed")
    return found


def offline_run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        **{k: CLOSED for k in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")},
        **{k.lower(): CLOSED for k in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")},
        "NO_PROXY": "",
        "no_proxy": "",
    }
    return subprocess.run(
        [check_jsonschema(), *args], capture_output=True, text=True, env=env, timeout=120
    )


def split_documents(spec: Path, into: Path) -> list[Path]:
    """One file per YAML document of `spec` (check-jsonschema reads one per file)."""
    parts = re.split(r"(?m)^---\s*$", spec.read_text(encoding="utf-8"))
    out = []
    for i, text in enumerate(p for p in parts if p.strip()):
        path = into / f"{spec.stem}-{i}.yaml"
        path.write_text(text, encoding="utf-8")
        out.append(path)
    return out


def spec_files() -> list[Path]:
    return sorted(SPECS.rglob("*.yaml"))


def test_no_schema_names_a_network_location() -> None:
    for path in SCHEMAS.glob("*.json"):
        data = json.loads(path.read_text(encoding="utf-8"))
        assert "$id" not in data, path.name  # refs resolve against the file itself
        refs = re.findall(r'"\$ref":\s*"([^"]*)"', path.read_text(encoding="utf-8"))
        assert all("://" not in ref for ref in refs), path.name
        for ref in refs:
            target = ref.partition("#")[0]
            assert not target or (SCHEMAS / target).is_file(), ref


def test_the_example_specs_pass_check_jsonschema_offline(tmp_path: Path) -> None:
    documents = [doc for spec in spec_files() for doc in split_documents(spec, tmp_path)]
    assert len(documents) > 10
    result = offline_run(
        "--schemafile", str(SCHEMAS / "backfillctl.schema.json"), *map(str, documents)
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for schema in ("backfill.schema.json", "config.schema.json"):
        kind = "Backfill" if schema.startswith("backfill") else "Config"
        files = [d for d in documents if f"kind: {kind}\n" in d.read_text(encoding="utf-8")]
        assert files
        result = offline_run("--schemafile", str(SCHEMAS / schema), *map(str, files))
        assert result.returncode == 0, result.stdout + result.stderr


BAD_BACKFILL = """\
apiVersion: backfillctl.dev/v1alpha1
kind: Backfill
metadata: {{name: bad}}
spec:
  select: {{method: descendants, roots: [ods_orders]}}
  dates: [{date}]
"""


@pytest.mark.parametrize("date", ["2024-13-45", "2024-13-01", "2024-02-30", "2024-1-05"])
def test_check_jsonschema_rejects_an_impossible_date(tmp_path: Path, date: str) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_text(BAD_BACKFILL.format(date=f'"{date}"'), encoding="utf-8")
    for schema in ("backfill.schema.json", "backfillctl.schema.json"):
        result = offline_run("--schemafile", str(SCHEMAS / schema), str(spec))
        assert result.returncode == 1, result.stdout + result.stderr
        assert "dates[0]" in result.stdout
        assert "Connection" not in result.stdout + result.stderr


def test_check_jsonschema_accepts_a_leap_day(tmp_path: Path) -> None:
    spec = tmp_path / "good.yaml"
    spec.write_text(BAD_BACKFILL.format(date="2024-02-29"), encoding="utf-8")
    result = offline_run("--schemafile", str(SCHEMAS / "backfill.schema.json"), str(spec))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("kind", KINDS)
def test_schema_command_output_is_self_contained(kind: str, tmp_path: Path) -> None:
    schema = kind_schema(kind)
    assert '"$ref"' not in json.dumps(schema)
    path = tmp_path / f"{kind}.json"
    path.write_text(json.dumps(schema), encoding="utf-8")
    result = offline_run("--check-metaschema", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_spec_modeline_resolves_from_where_the_spec_lives() -> None:
    for spec in spec_files():
        first = spec.read_text(encoding="utf-8").splitlines()[0]
        match = MODELINE.match(first)
        assert match, f"{spec}: no modeline"
        assert (spec.parent / match.group(1)).resolve().is_file(), spec


def test_the_readme_modeline_resolves_from_specs() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    targets = MODELINE.findall(readme)
    concrete = [t.strip("`") for t in targets if t.strip("`").endswith(".json")]
    assert concrete, "the README shows no concrete modeline"
    for target in concrete:
        resolved = (SPECS / target).resolve()
        assert resolved.is_file(), f"{target} does not resolve from specs/"
        assert resolved.parent == SCHEMAS
