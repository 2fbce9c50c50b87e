"""Errors a run can end with. Their class names are the `Error` names the state machine sees and catches."""


class RecsysError(Exception):
    """Base class: a clear, one-line, user-facing message."""


class ConfigError(RecsysError):
    """Invalid input or configuration (CLI exit code 2)."""


class DayNotIngested(RecsysError):
    """A day of the window has no canonical partition."""


class GateFailed(RecsysError):
    """A validation gate failed; nothing is published."""


class ArtifactInvalid(RecsysError):
    """An artifact failed the checks publish runs before the pointer moves."""


class PublishRefused(RecsysError):
    """Publishing would replace good artifacts with empty ones."""


class PointerConflict(RecsysError):
    """The current pointer kept changing under us (or changed during a rollback): nothing was overwritten."""


class ManifestNotFound(RecsysError):
    """No such manifest (version) for the tenant/surface."""


class RunInProgress(RecsysError):
    """Another run of the tenant/surface holds the run lease; the state machine retries Plan on it."""


class LeaseLost(RecsysError):
    """A run's lease expired and another run took it: the run stops before writing anything more."""
