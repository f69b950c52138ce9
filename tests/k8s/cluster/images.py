"""Container images made here, without a registry: OCI image archives for `ctr import`.

- backfillctl.local/pause:1: the pod sandbox (build.py's static `pause`);
- backfillctl.local/busybox:1: Debian's busybox-static and a link per applet (sh, echo,
  sleep, tr, seq…): what the backend's tests run;
- backfillctl.local/retail-etl:1: this host's Python 3.11 (Debian's python3.11, with the
  libraries it links and its standard library) and the example repo's `specs/jobs/` at
  /app/specs: what the README's example backfill runs as Jobs.

Images are never pulled (imagePullPolicy IfNotPresent finds them; the tag is not
`latest`).
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import subprocess
import tarfile
from collections.abc import Iterable, Iterator
from pathlib import Path

PAUSE = "backfillctl.local/pause:1"
BUSYBOX = "backfillctl.local/busybox:1"
RETAIL_ETL = "backfillctl.local/retail-etl:1"
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
Entry = tuple[str, bytes | None, int, str]  # name, data (None: a directory), mode, link


def _info(name: str, mode: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "root", "root"
    info.mode = mode
    return info


def _add(archive: tarfile.TarFile, name: str, data: bytes | None, mode: int, link: str) -> None:
    info = _info(name, mode)
    if link:
        info.type, info.linkname = tarfile.SYMTYPE, link
        archive.addfile(info)
    elif data is None:
        info.type = tarfile.DIRTYPE
        archive.addfile(info)
    else:
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))


def _layer(entries: Iterable[Entry]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for entry in entries:
            _add(archive, *entry)
    return buffer.getvalue()


def write_image(
    path: Path, name: str, entries: Iterable[Entry], cmd: list[str], workdir: str = "/"
) -> Path:
    """An OCI image layout of one layer, as a tar archive."""
    blobs: dict[str, bytes] = {}

    def blob(data: bytes) -> dict[str, object]:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        blobs[digest] = data
        return {"digest": digest, "size": len(data)}

    layer = blob(_layer(entries))
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Env": [f"PATH={PATH}"], "Cmd": cmd, "WorkingDir": workdir},
        "rootfs": {"type": "layers", "diff_ids": [layer["digest"]]},
    }
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            **blob(json.dumps(config, sort_keys=True).encode()),
        },
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", **layer}],
    }
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                **blob(json.dumps(manifest, sort_keys=True).encode()),
                "platform": {"architecture": "amd64", "os": "linux"},
                "annotations": {
                    "io.containerd.image.name": name,
                    "org.opencontainers.image.ref.name": name.rsplit(":", 1)[1],
                },
            }
        ],
    }
    with tarfile.open(path, "w") as archive:
        _add(archive, "oci-layout", b'{"imageLayoutVersion": "1.0.0"}', 0o644, "")
        _add(archive, "index.json", json.dumps(index).encode(), 0o644, "")
        for directory in ("blobs", "blobs/sha256"):
            _add(archive, directory, None, 0o755, "")
        for digest, data in blobs.items():
            _add(archive, "blobs/sha256/" + digest.removeprefix("sha256:"), data, 0o644, "")
    return path


def _base() -> Iterator[Entry]:
    for directory, mode in (
        ("bin", 0o755), ("etc", 0o755), ("dev", 0o755), ("proc", 0o755), ("sys", 0o755),
        ("tmp", 0o1777), ("root", 0o700), ("var", 0o755), ("run", 0o755), ("usr", 0o755),
    ):  # fmt: skip
        yield directory, None, mode, ""
    yield (
        "etc/passwd",
        b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n",
        0o644,
        "",
    )
    yield "etc/group", b"root:x:0:\nnogroup:x:65534:\n", 0o644, ""


def _busybox() -> Iterator[Entry]:
    busybox = Path("/bin/busybox")
    yield "bin/busybox", busybox.read_bytes(), 0o755, ""
    applets = subprocess.run([busybox, "--list"], check=True, capture_output=True, text=True)
    for applet in sorted(set(applets.stdout.split()) - {"busybox"}):
        yield f"bin/{applet}", None, 0o777, "busybox"


def _file(path: Path) -> Entry:
    return str(path).lstrip("/"), path.read_bytes(), path.stat().st_mode & 0o777, ""


def _python() -> Iterator[Entry]:
    """Debian's python3.11 with the shared libraries it (and its extensions) link."""
    python = Path("/usr/bin/python3.11")
    stdlib = Path("/usr/lib/python3.11")
    skip = re.compile(r"/(test|tests|idlelib|tkinter|ensurepip|turtledemo|__pycache__)(/|$)")
    files = [p for p in sorted(stdlib.rglob("*")) if p.is_file() and not skip.search(str(p))]
    libraries: set[Path] = set()
    for binary in [python, *(p for p in files if p.suffix == ".so")]:
        listed = subprocess.run(["ldd", str(binary)], capture_output=True, text=True).stdout
        libraries.update(Path(m) for m in re.findall(r"(/\S+\.so[.\d]*)", listed))
    made: set[str] = set()
    for path in [python, *sorted(libraries), *files]:
        for parent in reversed(path.parents[:-1]):
            if str(parent) not in made:
                made.add(str(parent))
                yield str(parent).lstrip("/"), None, 0o755, ""
        yield _file(path)  # a link's target's bytes under the name the loader asks for
    yield "usr/bin/python", None, 0o777, "python3.11"
    yield "usr/bin/python3", None, 0o777, "python3.11"


def _merge(*parts: Iterable[Entry]) -> list[Entry]:
    seen: dict[str, Entry] = {}
    for part in parts:
        for entry in part:
            seen.setdefault(entry[0], entry)
    return list(seen.values())


def build_images(out: Path, pause: Path, repo: Path) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    jobs = repo / "specs" / "jobs"
    app = [
        ("app", None, 0o755, ""),
        ("app/specs", None, 0o777, ""),
        ("app/specs/jobs", None, 0o755, ""),
    ]
    app += [
        (f"app/specs/jobs/{p.name}", p.read_bytes(), 0o644, "") for p in sorted(jobs.glob("*.py"))
    ]
    return {
        PAUSE: write_image(
            out / "pause.tar", PAUSE, [("pause", pause.read_bytes(), 0o755, "")], ["/pause"]
        ),
        BUSYBOX: write_image(
            out / "busybox.tar", BUSYBOX, _merge(_base(), _busybox()), ["/bin/sh"]
        ),
        RETAIL_ETL: write_image(
            out / "retail-etl.tar",
            RETAIL_ETL,
            _merge(_base(), _busybox(), _python(), app),
            ["python"],
            workdir="/app/specs",
        ),
    }
