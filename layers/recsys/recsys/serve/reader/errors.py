"""What the reader raises when an artifact or a manifest exists but cannot be served."""

from __future__ import annotations

from recsys.errors import RecsysError


class ArtifactIncompatible(RecsysError):
    """An artifact (or manifest) exists but cannot be served. An artifact's kind is then skipped (`ArtifactSignals`
    lists it as `unreadable`); a manifest's is ManifestIncompatible, which the API answers with 422
    RECSYS_ARTIFACT_INCOMPATIBLE.

    `kind` is the artifact kind, or "manifest" (the seed's load-failure metric label).
    """

    def __init__(self, message: str, *, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


class ManifestIncompatible(ArtifactIncompatible):
    """The manifest is not valid JSON, not v1, not a valid manifest, or names another tenant/surface."""

    def __init__(self, message: str) -> None:
        super().__init__(message, kind="manifest")
