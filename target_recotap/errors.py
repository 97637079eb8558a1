"""Errors the API or the connection to it can cause, each one a caller can act on.

No message built for one of them contains the API key: it is only ever placed in a header.
"""

from __future__ import annotations

from dataclasses import dataclass


class RecotapError(Exception):
    """Base of every error the API or the connection to it can cause."""


class AuthenticationFailed(RecotapError):
    """401/403: the key is missing, wrong or revoked. Never retried."""


class EndpointNotFound(RecotapError):
    """404: almost always a wrong ``api_url``."""


@dataclass(frozen=True)
class Violation:
    """One row of a 400 answer: which property broke which rule."""

    property: str
    constraints: dict[str, str]

    def __str__(self) -> str:
        rules = "; ".join(self.constraints.values()) or "invalid"
        return f"{self.property}: {rules}"


class RequestRejected(RecotapError):
    """400 (or another 4xx): the API refused the whole request; nothing was written."""

    def __init__(
        self,
        message: str,
        status: int,
        violations: list[Violation],
        custom_message: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.violations = violations  # a validation error's rows
        self.custom_message = custom_message  # a business error's words


class PayloadTooLarge(RecotapError):
    """413: the body was over the API's size limit; a smaller request may pass."""


class PipelineConflict(RecotapError):
    """409 on POST /deal-stages: some pipelines exist already, so nothing was created."""

    def __init__(self, message: str, pipeline_ids: set[str]) -> None:
        super().__init__(message)
        self.pipeline_ids = pipeline_ids


class RetriesExhausted(RecotapError):
    """A retriable failure outlasted ``max_retries``."""


class UnexpectedResponse(RecotapError):
    """A status or body the contract does not describe."""


class ApiUnreachable(RecotapError):
    """No connection at all before any answer in this run: almost always a wrong ``api_url``
    (or proxy). Stopped after the retry policy's quick first-contact retries, not all of it."""


class CertificateRefused(RecotapError):
    """Recotap's TLS certificate failed verification: retrying cannot help."""


class Stopped(RecotapError):
    """The run is stopping (a signal arrived) and this request was not sent."""


class SettingRefused(RecotapError):
    """Recotap refused what a setting sent (``accounts_segment_id``): no request can pass."""
