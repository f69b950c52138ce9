"""The schemas in a real editor: yaml-language-server, the YAML language server of VS
Code's and Neovim's YAML support, driven over stdio by a minimal LSP client.

The server is installed by tests/tools/install-yaml-ls (.ci/run runs it and sets
BACKFILLCTL_YAML_LS; without it, this module runs the script itself when npm exists).
Every proxy points at a closed port, so fetching a schema over the network would fail.
One server serves the whole module; each document is opened, its diagnostics awaited,
and closed.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SPECS = ROOT / "specs"
SCHEMAS = ROOT / "schemas"
README = ROOT / "README.md"
VERSION = "1.25.0"  # tests/tools/install-yaml-ls
CLOSED = "http://127.0.0.1:9"  # the discard port: nothing listens, connections are refused
TIMEOUT = 15.0
ERROR = 1  # DiagnosticSeverity.Error


def server_path() -> Path:
    env = os.environ.get("BACKFILLCTL_YAML_LS")
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    default = cache / f"backfillctl/yaml-ls-{VERSION}/node_modules/.bin/yaml-language-server"
    path = Path(env) if env else default
    if not path.is_file() and not env and shutil.which("npm"):
        # the project installs what its tests need: once, into the user's cache
        installed = subprocess.run(
            [str(ROOT / "tests" / "tools" / "install-yaml-ls")],
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )
        if installed.returncode == 0:
            path = Path(installed.stdout.strip().splitlines()[-1])
    if path.is_file() and shutil.which("node"):
        return path
    why = f"yaml-language-server not found at {path} (run tests/tools/install-yaml-ls)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(why)
    pytest.skip(why)


class Server:
    """A yaml-language-server process and the client half of its JSON-RPC over stdio."""

    def __init__(self, path: Path, root: Path) -> None:
        env = {
            **os.environ,
            **{k: CLOSED for k in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")},
            **{k.lower(): CLOSED for k in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")},
            "NO_PROXY": "",
            "no_proxy": "",
        }
        self.proc = subprocess.Popen(
            [str(path), "--stdio"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        self.settings = {"yaml": {"validate": True, "schemaStore": {"enable": False}}}
        self.inbox: queue.Queue[dict[str, Any]] = queue.Queue()
        self.next_id = 0
        self.version = 0
        threading.Thread(target=self._read, daemon=True).start()
        self.request(
            "initialize",
            {
                "processId": os.getpid(),
                "rootUri": root.as_uri(),
                "workspaceFolders": [{"uri": root.as_uri(), "name": root.name}],
                "capabilities": {
                    "workspace": {"configuration": True},
                    "textDocument": {"publishDiagnostics": {}},
                },
            },
        )
        self.notify("initialized", {})
        self.notify("workspace/didChangeConfiguration", {"settings": self.settings})

    def _read(self) -> None:
        out = self.proc.stdout
        assert out is not None
        while True:
            length = None
            while (line := out.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode("ascii").partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            if not line or length is None:
                return
            self.inbox.put(json.loads(out.read(length)))

    def _send(self, message: dict[str, Any]) -> None:
        body = json.dumps({"jsonrpc": "2.0", **message}).encode()
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.proc.stdin.flush()

    def notify(self, method: str, params: Any) -> None:
        self._send({"method": method, "params": params})

    def _answer(self, message: dict[str, Any]) -> None:
        """Answer the server's own requests (configuration, registrations, progress)."""
        result: Any = None
        if message["method"] == "workspace/configuration":
            items = message["params"]["items"]
            result = [self.settings.get(item.get("section", ""), None) for item in items]
        self._send({"id": message["id"], "result": result})

    def receive(self, wanted: Any) -> dict[str, Any]:
        """The first message `wanted` accepts, answering server requests meanwhile."""
        while True:
            try:
                message = self.inbox.get(timeout=TIMEOUT)
            except queue.Empty:
                raise AssertionError("yaml-language-server did not answer") from None
            if "method" in message and "id" in message:
                self._answer(message)
            elif wanted(message):
                return message

    def request(self, method: str, params: Any) -> Any:
        self.next_id += 1
        ident = self.next_id
        self._send({"id": ident, "method": method, "params": params})
        reply = self.receive(lambda m: m.get("id") == ident and "method" not in m)
        assert "error" not in reply, reply
        return reply.get("result")

    def diagnostics(self, path: Path, text: str) -> list[dict[str, Any]]:
        """Open `text` as the document at `path` and return its published diagnostics."""
        uri = path.as_uri()
        self.version += 1
        doc = {"uri": uri, "languageId": "yaml", "version": self.version, "text": text}
        self.notify("textDocument/didOpen", {"textDocument": doc})
        try:
            published = self.receive(
                lambda m: (
                    m.get("method") == "textDocument/publishDiagnostics"
                    and m["params"]["uri"] == uri
                )
            )
        finally:
            self.notify("textDocument/didClose", {"textDocument": {"uri": uri}})
        # closing publishes [] for the URI: taken here, not by the next open of it
        self.receive(
            lambda m: (
                m.get("method") == "textDocument/publishDiagnostics"
                and m["params"] == {"uri": uri, "diagnostics": []}
            )
        )
        diagnostics: list[dict[str, Any]] = published["params"]["diagnostics"]
        return diagnostics

    def close(self) -> None:
        try:
            self.request("shutdown", None)
            self.notify("exit", None)
            self.proc.wait(timeout=5)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    started = Server(server_path(), ROOT)
    try:
        yield started
    finally:
        started.close()


def errors(diagnostics: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for d in diagnostics if d.get("severity", ERROR) == ERROR]


def described(diagnostics: list[dict[str, Any]]) -> list[str]:
    return [f"{d['range']['start']['line'] + 1}: {d['message']}" for d in diagnostics]


def schema_unloaded(diagnostics: list[dict[str, Any]]) -> list[str]:
    return [d for d in described(diagnostics) if re.search(r"(?i)unable to load", d)]


@pytest.mark.parametrize(
    "spec", sorted(SPECS.rglob("*.yaml")), ids=lambda p: str(p.relative_to(SPECS))
)
def test_each_example_spec_has_no_error_in_the_editor(server: Server, spec: Path) -> None:
    text = spec.read_text(encoding="utf-8")
    assert text.startswith("# yaml-language-server: $schema="), spec
    diagnostics = server.diagnostics(spec, text)
    assert not errors(diagnostics), described(diagnostics)


GOOD_BACKFILL = """\
# yaml-language-server: $schema=../../schemas/backfill.schema.json
apiVersion: backfillctl.dev/v1alpha1
kind: Backfill
metadata:
  name: editor-check
spec:
  select:
    method: descendants
    roots: [ods_order_items]
  dates:
    - {from: 2024-03-01, to: 2024-03-07}
  groups: 2
"""


def backfill_in(old: str, new: str, at: Path) -> tuple[Path, str, int]:
    """GOOD_BACKFILL with `old` replaced by `new`, written in directory `at` with a
    modeline relative to it; its path, text and the 1-based line of `new`."""
    assert old in GOOD_BACKFILL
    schema = os.path.relpath(SCHEMAS / "backfill.schema.json", at)
    text = GOOD_BACKFILL.replace("../../schemas/backfill.schema.json", schema)
    text = text.replace(old, new)
    path = at / "backfill.yaml"
    path.write_text(text, encoding="utf-8")
    return path, text, text[: text.index(new)].count("\n") + 1


def test_a_good_backfill_has_no_error(server: Server, tmp_path: Path) -> None:
    path, text, _ = backfill_in("groups: 2", "groups: 2", tmp_path)
    assert "$schema=../" in text  # relative, out of tmp_path into the checkout
    diagnostics = server.diagnostics(path, text)
    assert not errors(diagnostics), described(diagnostics)


BAD = {
    "impossible-date": ("to: 2024-03-07", "to: 2024-13-45"),
    "unknown-field": ("  groups: 2", "  grops: 2"),
    "wrong-type": ("  groups: 2", "  groups: two"),
}


# yaml-language-server checks `format: date` by a pattern only (month 01-12, day 01-31);
# the schema's own pattern knows each month's length and leap years.
BAD["day-past-month-end"] = ("to: 2024-03-07", "to: 2024-02-30")
BAD["no-leap-day"] = ("to: 2024-03-07", "to: 2023-02-29")


@pytest.mark.parametrize("case", sorted(BAD))
def test_the_editor_rejects_a_bad_backfill_at_its_line(
    server: Server, case: str, tmp_path: Path
) -> None:
    path, text, line = backfill_in(*BAD[case], tmp_path)
    diagnostics = server.diagnostics(path, text)
    assert not schema_unloaded(diagnostics)
    lines = [d["range"]["start"]["line"] + 1 for d in errors(diagnostics)]
    assert line in lines, described(diagnostics)


def test_the_readme_modeline_resolves_from_specs(server: Server) -> None:
    readme = README.read_text(encoding="utf-8")
    modeline = r"directly\s+in `specs/` says `(# yaml-language-server: \$schema=\S+)`"
    found = re.search(modeline, readme)
    assert found, "README no longer shows the modeline of a file in specs/"
    text = GOOD_BACKFILL.replace(GOOD_BACKFILL.splitlines()[0], found.group(1))
    path = SPECS / "editor-readme.yaml"  # never written: opened from memory, as unsaved
    diagnostics = server.diagnostics(path, text)
    assert not schema_unloaded(diagnostics), described(diagnostics)
    assert not errors(diagnostics), described(diagnostics)
    # and a mistake is then found, so the schema was really applied
    bad = text.replace("  groups: 2", "  groups: two")
    assert errors(server.diagnostics(path, bad))
