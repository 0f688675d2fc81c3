"""Named exceptions raised by contlearn's library code.

Every error a user can cause derives from :class:`ContlearnError`; its message is one line
that names the problem and the fix. The CLI turns these into ``click.ClickException``.
"""


class ContlearnError(Exception):
    """Base class: a problem the user can fix; the message says how. ``exit_code`` is the
    command line's exit status for it."""

    exit_code = 1


class WorkspaceExists(ContlearnError):
    """``init`` on a folder that already holds a workspace."""


class WorkspaceNotFound(ContlearnError):
    """A command ran outside any workspace."""


class ConfigError(ContlearnError):
    """``tasks.toml`` or an option holds an invalid value."""


class DeviceError(ConfigError):
    """A device or precision this machine cannot provide."""


class PeerFailed(ContlearnError):
    """Another process of a data-parallel run stopped or stopped answering."""


class UnknownSetting(ContlearnError, TypeError):
    """A keyword argument that names no setting (a ``TypeError`` too, as Python raises for an
    unknown keyword)."""


class SchemaError(ContlearnError):
    """The ledger's schema is newer than this code, or cannot be read."""


class LedgerError(ContlearnError):
    """The database refused an operation (locked, unreachable, constraint)."""


class InvalidTaskName(ContlearnError):
    """A task name outside ``[a-z0-9][a-z0-9_-]{0,63}``."""


class TaskExists(ContlearnError):
    """A task name that is already registered."""


class TaskNotFound(ContlearnError):
    """A task name that is not registered: a usage error (exit code 2), as an unknown option."""

    exit_code = 2


class TaskBusy(ContlearnError):
    """A task that a live run is training cannot be removed or trained again meanwhile."""


class TaskNotTrained(ContlearnError):
    """An operation that needs a trained task met one that is not."""


class NoPendingTask(ContlearnError):
    """``train-next`` found nothing left to train."""


class BadData(ContlearnError):
    """A task's data folder or files cannot be used as they are."""


class BackboneError(ContlearnError):
    """The backbone cannot be found or loaded."""


class BackboneMismatch(ContlearnError):
    """The backbone on disk differs from the one the ledger records."""


class UnsupportedArchitecture(ContlearnError):
    """A model whose layers the adapter injection cannot wrap."""


class ArtifactError(ContlearnError):
    """An artifact is missing, modified or unreadable."""


class RoutingUnavailable(ContlearnError):
    """Routing without a task name where a trained task has no routing statistics, or where
    no task is trained."""


class VerificationFailed(ContlearnError):
    """An earlier task's results changed after a new task was trained."""


class InteropError(ContlearnError):
    """An adapter folder of AdapterHub or peft that cannot be written or read as asked: another
    format, another backbone, a method the format cannot express, keys that do not map, or a
    weights file that is corrupt, truncated or pickled (never loaded)."""


class BadRequest(ContlearnError):
    """A request to ``contlearn serve`` that cannot be answered as sent. ``status`` is the HTTP
    status it earns; ``field`` names the part of the body at fault, ``limit`` the limit it
    breaks (with its ``allowed`` value)."""

    def __init__(
        self,
        message: str,
        *,
        status: int = 422,
        field: str | None = None,
        limit: str | None = None,
        allowed: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.field, self.limit, self.allowed = status, field, limit, allowed


# -- faults from the environment: each has its own exit code (``contlearn --help`` lists them) --
class StorageFull(ContlearnError):
    """No space left on the device (or over a quota) while writing a file or the ledger."""

    exit_code = 3


class ReadOnlyStorage(ContlearnError):
    """A file or folder that cannot be written or read: a read-only file system, or permissions."""

    exit_code = 4


class LedgerUnavailable(LedgerError):
    """The ledger is locked by another process past the busy timeout, or its server is down."""

    exit_code = 5


class OutOfMemory(ContlearnError):
    """The accelerator ran out of memory; a smaller batch fits."""

    exit_code = 6


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM reached contlearn: the run in progress stops at the next safe point
    and is recorded as interrupted. A ``KeyboardInterrupt`` (not a ContlearnError), so that
    nothing that catches errors swallows it; the exit code is 128 + the signal number."""

    def __init__(self, signum: int) -> None:
        import signal

        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum
