"""Every error modelfarm raises on purpose, as one tree that says who must act.

    FarmError                       base; `status` is the HTTP status the gateway answers with
    ├── ConfigError                 the operator: a bad manifest or model source (500 at serve time)
    │   ├── ManifestError           farm.toml does not validate: names file, key and fix
    │   └── ModelSourceError        a weight file is missing, or its sha256 does not match
    ├── ClientError                 the client: fix the request and send it again
    │   ├── InvalidRequestError     400: malformed JSON or a field out of range
    │   ├── ContextLengthError      400: the prompt does not fit the model's context
    │   ├── ModelNotFoundError      404: no model of that name in the farm
    │   ├── AuthenticationError     401: missing or unknown API key
    │   ├── ToolError               400: an agent's tool refused its arguments (a path outside
    │   │                           the workspace, a bad filter, an unsafe expression)
    │   ├── RunNotFoundError        404: no agent run with that id
    │   └── PipelineNotFoundError   404: no running sense pipeline of that name
    └── SystemError_                the system: retry later or elsewhere
        ├── OverloadedError         429: the model's queue is full (carries retry_after seconds)
        └── BackendUnavailableError 503: the backend failed, timed out or could not be loaded

The gateway maps these to OpenAI-style error bodies in one place (`serve/errors.py`);
anything else that escapes is a bug and is answered as a generic 500 without a traceback.
"""

from __future__ import annotations


class FarmError(Exception):
    """Base of every error modelfarm raises on purpose."""

    status: int = 500
    type: str = "server_error"
    code: str | None = None

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


class ConfigError(FarmError):
    """The operator must act: the manifest or a model file is wrong."""

    status = 500
    type = "configuration_error"


class ManifestError(ConfigError):
    """farm.toml does not validate. The message names the file, the key and the fix."""

    code = "invalid_manifest"


class ModelSourceError(ConfigError):
    """A model's weights cannot be found or do not match their sha256 pin."""

    code = "model_source"


class ClientError(FarmError):
    """The client must act: the request is wrong."""

    status = 400
    type = "invalid_request_error"


class InvalidRequestError(ClientError):
    code = "invalid_request"


class ContextLengthError(ClientError):
    code = "context_length_exceeded"


class ModelNotFoundError(ClientError):
    status = 404
    code = "model_not_found"


class AuthenticationError(ClientError):
    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class ToolError(ClientError):
    """An agent tool refused its arguments or failed on them; the message says which and why."""

    code = "tool_error"


class RunNotFoundError(ClientError):
    status = 404
    code = "run_not_found"


class PipelineNotFoundError(ClientError):
    status = 404
    code = "pipeline_not_found"


class SystemError_(FarmError):
    """The system must act: retry later, or on another model."""

    status = 503
    type = "server_error"


class OverloadedError(SystemError_):
    status = 429
    type = "rate_limit_error"
    code = "model_overloaded"

    def __init__(self, message: str, *, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class BackendUnavailableError(SystemError_):
    status = 503
    code = "backend_unavailable"
