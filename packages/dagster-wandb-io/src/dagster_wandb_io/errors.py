"""Errors raised by the integration. Every message says how to fix the problem."""

from __future__ import annotations


class WandbArtifactsIOManagerError(Exception):
    """Base class: something the W&B Artifacts IO manager could not do."""

    def __init__(self, message: str = "A W&B Artifacts IO Manager error occurred.") -> None:
        self.message = message
        super().__init__(message)


class ConfigurationError(WandbArtifactsIOManagerError):
    """Invalid `wandb_artifact_configuration`, resource config or environment."""


class ArtifactNotFoundError(WandbArtifactsIOManagerError):
    """The requested artifact (or version/alias) does not exist."""


class SerializationError(WandbArtifactsIOManagerError):
    """An object could not be serialized or deserialized."""


class SignatureError(WandbArtifactsIOManagerError):
    """A pickle-family payload is unsigned, tampered with, or signed with another key."""


class CacheCorruptionError(WandbArtifactsIOManagerError):
    """A cache entry does not match its recorded digest and cannot be fetched again."""


class MissingApiKeyError(ConfigurationError):
    """Online mode was requested without a W&B API key."""


class OfflineUnavailableError(WandbArtifactsIOManagerError, AttributeError):
    """A feature of a loaded artifact needs the W&B cloud but the read was offline."""


class OfflineIndexError(WandbArtifactsIOManagerError):
    """The offline index of an artifact is unreadable; the message says how to rewrite it."""
