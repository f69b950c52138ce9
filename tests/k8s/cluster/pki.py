"""The certificates of a test control plane, made with the openssl command.

One CA signs everything: the API server's serving certificate, the client certificates
of the admin (group system:masters), the controller manager and the API server's client
to the node, and the node's serving certificate. The service-account token key pair is
separate. EC P-256 keys: fast to make, and every component takes them.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

DAYS = "3"


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _key(path: Path) -> None:
    _openssl(
        "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", path.name, cwd=path.parent
    )


@dataclass(frozen=True)
class Pair:
    cert: Path
    key: Path


class Pki:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.ca = Pair(root / "ca.crt", root / "ca.key")
        _key(self.ca.key)
        _openssl(
            "req", "-x509", "-new", "-key", "ca.key", "-out", "ca.crt", "-days", DAYS,
            "-subj", "/CN=backfillctl-test-ca",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
            cwd=root,
        )  # fmt: skip
        self.service_accounts = Pair(root / "sa.pub", root / "sa.key")
        _key(self.service_accounts.key)
        _openssl("ec", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=root)

    def issue(self, name: str, subject: str, *, server: bool = False, client: bool = False) -> Pair:
        """A certificate signed by the CA: `subject` like /O=system:masters/CN=admin."""
        pair = Pair(self.root / f"{name}.crt", self.root / f"{name}.key")
        _key(pair.key)
        usage = [u for u, on in (("serverAuth", server), ("clientAuth", client)) if on]
        extensions = [
            "basicConstraints=critical,CA:FALSE",
            "keyUsage=critical,digitalSignature,keyEncipherment",
            f"extendedKeyUsage={','.join(usage)}",
        ]
        if server:
            names = "IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default"
            extensions.append(f"subjectAltName={names},DNS:kubernetes.default.svc")
        (self.root / f"{name}.ext").write_text("\n".join(extensions) + "\n", encoding="utf-8")
        _openssl(
            "req", "-new", "-key", pair.key.name, "-out", f"{name}.csr", "-subj", subject,
            cwd=self.root,
        )  # fmt: skip
        _openssl(
            "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", DAYS, "-out", pair.cert.name,
            "-extfile", f"{name}.ext",
            cwd=self.root,
        )  # fmt: skip
        return pair
