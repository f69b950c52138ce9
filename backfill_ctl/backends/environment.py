"""What a command inherits of backfillctl's environment: all of it but backfillctl's own.

The commands backfillctl runs (instances' commands, alert commands, policies) run the
code of whoever wrote a spec, not backfillctl's. They inherit the environment of the
process that runs them (PATH, HOME, proxies, the team's own settings) except the
variables backfillctl reads for itself, which would give them its store and its
credentials:

- `BACKFILLCTL_*` (and `_BACKFILLCTL_*`): the store (`BACKFILLCTL_STATE`, a PostgreSQL
  URL may hold its password), the actor that operates as, the clock, the dashboard;
- `PG*`: libpq's, which connect to a PostgreSQL store (its server, user, password,
  passfile, service file, TLS keys), whatever the store, so that nothing depends on
  which one this process opened;
- the variable the Config names for its SMTP password (`spec.alerts.smtp.passwordEnv`).

A node that needs one of these names sets it in its own `run.env`, which is applied
after (the attempt's variables win). Not hidden: what backfillctl only passes on to
libraries it shares with everyone (KUBECONFIG, NO_COLOR, GITHUB_*), and files (a
command running as the controller's user can read its ~/.pgpass).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, AnyStr

if TYPE_CHECKING:
    from collections.abc import Collection, Mapping

    from backfill_ctl.spec.model import Smtp

# Names that start so are backfillctl's own (libpq's: every one it reads starts with PG).
OWN_PREFIXES = ("BACKFILLCTL_", "_BACKFILLCTL_", "PG")


def own_variables(smtp: Smtp | None) -> frozenset[str]:
    """The names of the variables the Config makes backfillctl's own (beyond the
    prefixes): its SMTP password's (`smtp`: the Config's)."""
    return frozenset({smtp.password_env} if smtp is not None and smtp.password_env else ())


def is_own(name: str, hidden: Collection[str] = ()) -> bool:
    return name.startswith(OWN_PREFIXES) or name in hidden


def command_environment(
    environ: Mapping[AnyStr, AnyStr], hidden: Collection[str] = ()
) -> dict[AnyStr, AnyStr]:
    """`environ` (str or bytes, as os.environ or os.environb) without backfillctl's own
    variables and those named in `hidden`."""
    kept: dict[AnyStr, AnyStr] = {}
    for name, value in environ.items():
        text = name.decode("utf-8", "surrogateescape") if isinstance(name, bytes) else name
        if not is_own(text, hidden):
            kept[name] = value
    return kept
