"""Domain errors. Each carries its HTTP status; one place (the API resolver) maps them to responses.

The adapters raise errors of their own (``stepwise.store.errors``, ``stepfunctions.StepFunctionsError``,
``schedules.SchedulerError``, ``secrets.CredentialError``); the services turn those that mean something to
a caller into these.
"""

from __future__ import annotations


class StepwiseError(Exception):
    """Base of every error the service reports to a caller; ``str(error)`` is safe to show."""

    status_code = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(StepwiseError):
    """The request cannot be served as sent; the message says what to fix."""

    status_code = 400


class InvalidWorkflow(BadRequest):
    """A workflow definition failed validation."""


class InvalidAgent(BadRequest):
    """An agent definition failed validation."""


class InvalidSchedule(BadRequest):
    """A schedule failed validation (expression, timezone, ...)."""


class Unauthorized(StepwiseError):
    """No identity came with the request."""

    status_code = 401


class NotOwner(StepwiseError):
    """The resource exists but belongs to someone else."""

    status_code = 403


class NotFound(StepwiseError):
    """No resource with that id."""

    status_code = 404


class ExecutionNotFound(NotFound):
    def __init__(self, execution_id: str) -> None:
        super().__init__(f"Execution {execution_id} not found")


class WorkflowNotFound(NotFound):
    def __init__(self, workflow_id: str) -> None:
        super().__init__(f"Workflow {workflow_id} not found")


class AgentNotFound(NotFound):
    def __init__(self, agent_id: str) -> None:
        super().__init__(f"Agent {agent_id} not found")


class ScheduleNotFound(NotFound):
    def __init__(self, schedule_id: str) -> None:
        super().__init__(f"Schedule {schedule_id} not found")


class Conflict(StepwiseError):
    """The resource's current state does not allow the operation."""

    status_code = 409


class ExecutionExists(Conflict):
    """An execution with that id was recorded already (a start repeated with the same id)."""

    def __init__(self, execution_id: str) -> None:
        super().__init__(f"Execution {execution_id} exists already")
        self.execution_id = execution_id


class TooManyRuns(StepwiseError):
    """A concurrency limit that refuses what is over it (a workflow's ``onLimit: reject``) is full.

    ``retry_after`` (seconds) is what the answer's ``Retry-After`` header suggests.
    """

    status_code = 429

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class StartFailed(StepwiseError):
    """Step Functions refused to start an execution; the record was marked FAILED."""

    status_code = 500


class Unavailable(StepwiseError):
    """A service behind the API refused the change for now; nothing was changed, and a retry may work."""

    status_code = 503
