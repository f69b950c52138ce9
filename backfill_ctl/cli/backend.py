"""`backfillctl backend check [PATHS]`: can the Config's backend run attempts here?"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from backfill_ctl.backends.files import state_dir
from backfill_ctl.cli.console import err, out, print_diagnostics
from backfill_ctl.cli.state import StateOpt, state_file
from backfill_ctl.errors import UsageError
from backfill_ctl.spec.loader import load_specs

if TYPE_CHECKING:
    from backfill_ctl.backends import Backend

backend_app = typer.Typer(
    help="The backend that runs attempts (the Config's spec.backend)."
    "\n\n\b\nExamples:"
    "\n  backfillctl backend check specs/    # can the Config's backend run attempts?",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def failures(backend: Backend) -> list[str]:
    """What the backend lacks, one line each (empty: ready)."""
    return [f"{what}: {detail}" for what, ok, detail in backend.check() if not ok]


def require_ready(backend: Backend) -> None:
    """Refuse to run with a backend that cannot work (exit 2), naming what is missing."""
    missing = failures(backend)
    if missing:
        raise UsageError(
            f"the {backend.name} backend is not ready: " + "; ".join(missing),
            hint="backfillctl backend check shows every check",
        )


@backend_app.command("check")
def check_command(
    paths: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="PATHS",
            help="Spec files or directories holding the Config (default: the current directory).",
            show_default=False,
        ),
    ] = None,
    state: StateOpt = None,
) -> None:
    """Connect to the backend and check every permission it needs, changing nothing.

    For kubernetes: the API server answers, and SelfSubjectAccessReviews say the identity
    in use may create, get, list, watch and delete Jobs, get and list Pods, and get
    pods/log in the namespace. Exit 0 when all pass, 1 when one fails, 2 when the specs
    or the backend's configuration cannot be used.

    \b
    Examples:
      backfillctl backend check specs/            # the Config in specs/
      backfillctl backend check                   # the Config in the current directory
    """
    from backfill_ctl.backends import BackendContext, make_backend

    specs = load_specs(paths or ["."])
    if specs.errors:
        print_diagnostics(specs.errors)
        raise typer.Exit(2)
    config = specs.config
    # Checking reads no state: the directory is where the backend would keep its files.
    backend = make_backend(
        config.backend, BackendContext(state_dir(state_file(state, specs)), config)
    )
    try:
        results = backend.check()
    finally:
        backend.close()
    width = max(len(what) for what, _, _ in results)
    out(f"{'CHECK'.ljust(width)}  RESULT  DETAIL")
    for what, ok, detail in results:
        out(f"{what.ljust(width)}  {('ok' if ok else 'FAILED').ljust(6)}  {detail}")
    bad = sum(1 for _, ok, _ in results if not ok)
    if bad:
        err(f"backend {config.backend}: {bad} of {len(results)} checks failed")
        raise typer.Exit(1)
    err(f"backend {config.backend}: ready")
