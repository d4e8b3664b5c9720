"""Shared CLI plumbing: settings, wiring and error-to-exit-code mapping."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click
from pydantic import ValidationError
from rich.console import Console

from referral_sync.app import Components, build_components
from referral_sync.errors import (
    ConfigurationError,
    CrmPermanentError,
    ReferralRejected,
    RetryableError,
)
from referral_sync.logs import configure_logging
from referral_sync.settings import Settings

EXIT_INVALID, EXIT_REJECTED, EXIT_UNAVAILABLE = 1, 3, 4


class CliState:
    """Per-invocation state: settings read once, components built on first use."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._components: Components | None = None
        self.console = Console()

    def components(self) -> Components:
        """Wire the process (store, CRM, service) on first use."""
        if self._components is None:
            self._components = build_components(self.settings)
        return self._components


def load_settings() -> Settings:
    """Settings from the environment, or exit 1 naming every bad variable."""
    try:
        return Settings()
    except ValidationError as exc:
        for item in exc.errors():
            path = "__".join(str(p) for p in item["loc"]).upper()
            click.echo(f"error: REFERRAL_SYNC_{path}: {item['msg']}", err=True)
        raise SystemExit(EXIT_INVALID) from exc


#: Long-running commands log at the configured level; the others only warn, because their
#: output is for a person and INFO lines on stderr would bury it.
_SERVICE_COMMANDS = {"serve", "worker"}


def configure(ctx: click.Context, log_level: str | None) -> None:
    """Read settings and set up logging for a command."""
    settings = load_settings()
    default = settings.log_level if ctx.invoked_subcommand in _SERVICE_COMMANDS else "WARNING"
    configure_logging(log_level or default)
    ctx.obj = CliState(settings)


def state() -> CliState:
    """The running command's state."""
    obj = click.get_current_context().find_object(CliState)
    assert obj is not None
    return obj


@contextmanager
def friendly_errors() -> Iterator[None]:
    """Turn our errors into a clear message and a meaningful exit code."""
    try:
        yield
    except ConfigurationError as exc:
        click.echo(f"error: {exc}", err=True)
        for problem in exc.problems:
            if problem != str(exc):
                click.echo(f"  - {problem}", err=True)
        raise SystemExit(EXIT_INVALID) from exc
    except ReferralRejected as exc:
        click.echo(f"refused ({exc.code}): {exc.message}", err=True)
        raise SystemExit(EXIT_REJECTED) from exc
    except (RetryableError, CrmPermanentError) as exc:
        click.echo(f"error: the CRM or store is unavailable: {exc}", err=True)
        raise SystemExit(EXIT_UNAVAILABLE) from exc


def with_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Decorator form of ``friendly_errors``."""
    import functools

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with friendly_errors():
            return func(*args, **kwargs)

    return wrapper
