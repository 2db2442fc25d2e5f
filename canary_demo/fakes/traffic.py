"""In-memory TrafficPort with Lambda's semantics, for the service's tests and the offline demo.

Faithful where moto is not: every write changes the alias's RevisionId, and a write guarded by a stale one
raises AliasDrift. `force_change` plays the colleague who edits the alias by hand.
"""

from __future__ import annotations

import base64
import hashlib
import threading
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from bot.aws.traffic import is_published_version, merged_env, validate_routing
from bot.model import AliasState
from bot.ports import (
    AliasDrift,
    AliasNotFound,
    CanaryError,
    FunctionNotFound,
    PublishConflict,
    PublishedVersion,
    VersionNotFound,
)
from canary_demo.seed import BASE_ENV, LEGO_API, PRODUCTION_ALIAS, REDIS_ENV


@dataclass
class _Version:
    env: dict[str, str]
    description: str = ""
    code_sha256: str = ""


@dataclass
class _Function:
    name: str
    latest_env: dict[str, str]
    code_sha256: str
    versions: dict[str, _Version] = field(default_factory=dict)

    def last_published(self) -> tuple[str, _Version] | None:
        if not self.versions:
            return None
        number = max(self.versions, key=int)
        return number, self.versions[number]


class FakeTraffic:
    """Functions, published versions and aliases in memory. Thread-safe, like the real client."""

    def __init__(self, region: str = "us-east-1") -> None:
        self.region = region
        self._lock = threading.Lock()
        self._functions: dict[str, _Function] = {}
        self._aliases: dict[tuple[str, str], AliasState] = {}
        self._fail_next: CanaryError | None = None
        self._lose_next: CanaryError | None = None
        self._fail_next_read: CanaryError | None = None
        # Every successful update_routing, in order: what tests assert "was (not) written" against.
        self.routing_writes: list[AliasState] = []
        # How many versions publish_fallback made (a retry that found its version adds none).
        self.published_fallbacks = 0

    # ------------------------------------------------------------ world building
    def add_function(
        self, name: str, versions: Sequence[str] = ("1", "2"), env: Mapping[str, str] | None = None
    ) -> None:
        """A function whose $LATEST and every listed published version carry `env`."""
        with self._lock:
            function = _Function(name=name, latest_env=dict(env or {}), code_sha256=_code_sha(name))
            for number in versions:
                if not is_published_version(number):
                    raise ValueError(f"{number!r} is not a published version number")
                function.versions[number] = _Version(
                    env=dict(function.latest_env), code_sha256=function.code_sha256
                )
            self._functions[name] = function

    def add_alias(self, function: str, alias: str, version: str) -> AliasState:
        with self._lock:
            self._require_version(function, version)
            state = AliasState(function=function, alias=alias, version=version, revision_id=_new_revision())
            self._aliases[(function, alias)] = state
            return state

    def force_change(
        self, function: str, alias: str, version: str, weights: Mapping[str, float] | None = None
    ) -> AliasState:
        """Someone else changes the alias (console, CLI): no RevisionId guard, and the revision moves on."""
        with self._lock:
            self._require_alias(function, alias)
            state = AliasState(
                function=function,
                alias=alias,
                version=version,
                weights=dict(weights or {}),
                revision_id=_new_revision(),
            )
            self._aliases[(function, alias)] = state
            return state

    def remove_function(self, name: str) -> None:
        """The function is deleted (with its aliases), as by someone outside the bot."""
        with self._lock:
            self._require_function(name)
            del self._functions[name]
            for key in [key for key in self._aliases if key[0] == name]:
                del self._aliases[key]

    def fail_next(self, error: CanaryError) -> None:
        """The next write (update_routing or publish_version) raises `error` and changes nothing."""
        with self._lock:
            self._fail_next = error

    def lose_next_answer(self, error: CanaryError) -> None:
        """The next update_routing lands, then raises `error`: the answer was lost (a timeout, a crash)."""
        with self._lock:
            self._lose_next = error

    def version_env(self, function: str, version: str) -> dict[str, str]:
        """The environment a published version (or "$LATEST") carries."""
        with self._lock:
            if version == "$LATEST":
                return dict(self._require_function(function).latest_env)
            return dict(self._require_version(function, version).env)

    # ------------------------------------------------------------ TrafficPort
    def fail_next_read(self, error: CanaryError) -> None:
        """The next get_alias raises `error` (a throttled or failed GetAlias)."""
        with self._lock:
            self._fail_next_read = error

    def get_alias(self, function: str, alias: str) -> AliasState:
        with self._lock:
            error, self._fail_next_read = self._fail_next_read, None
            if error is not None:
                raise error
            return self._require_alias(function, alias)

    def environment_keys(self, function: str, version: str) -> frozenset[str]:
        return frozenset(self.version_env(function, version))

    def version_exists(self, function: str, version: str) -> bool:
        with self._lock:
            return version in self._require_function(function).versions

    def update_routing(
        self, function: str, alias: str, *, version: str, weights: Mapping[str, float], revision_id: str
    ) -> AliasState:
        validate_routing(function, alias, version, weights)
        with self._lock:
            # Same order of checks as LambdaTraffic: versions (and so the function), then the alias's guard.
            for wanted in (version, *weights):
                self._require_version(function, wanted)
            current = self._require_alias(function, alias)
            self._raise_injected_failure()
            if current.revision_id != revision_id:
                raise AliasDrift(
                    f"alias {function}:{alias} changed since we read it (revision {revision_id}); "
                    "nothing was written — re-read the alias before deciding again"
                )
            state = AliasState(
                function=function,
                alias=alias,
                version=version,
                weights=dict(weights),
                revision_id=_new_revision(),
            )
            self._aliases[(function, alias)] = state
            self.routing_writes.append(state)
            lost, self._lose_next = self._lose_next, None
            if lost is not None:
                raise lost
            return state

    def publish_version(
        self,
        function: str,
        *,
        set_env: Mapping[str, str],
        unset_env: Sequence[str],
        description: str,
    ) -> PublishedVersion:
        with self._lock:
            target = self._require_function(function)
            env = merged_env(target.latest_env, set_env, unset_env)
            self._raise_injected_failure()
            target.latest_env = env
            last = target.last_published()
            # Like Lambda: nothing changed since the last version → that version comes back, none is made.
            if last is not None and last[1].env == env:
                number, existing = last
                return PublishedVersion(
                    function=function,
                    version=number,
                    code_sha256=target.code_sha256,
                    description=existing.description,
                )
            number = str(int(last[0]) + 1) if last else "1"
            target.versions[number] = _Version(
                env=dict(env), description=description, code_sha256=target.code_sha256
            )
            return PublishedVersion(
                function=function, version=number, code_sha256=target.code_sha256, description=description
            )

    def publish_fallback(
        self, function: str, *, from_version: str, unset_env: Sequence[str], description: str
    ) -> PublishedVersion:
        with self._lock:
            target = self._require_function(function)
            source = self._require_version(function, from_version)
            for number, version in sorted(target.versions.items(), key=lambda item: int(item[0])):
                if version.description == description:
                    return PublishedVersion(
                        function=function,
                        version=number,
                        code_sha256=version.code_sha256,
                        description=description,
                    )
            if target.code_sha256 != source.code_sha256:
                raise PublishConflict(
                    f"$LATEST of {function} carries other code than v{from_version}; nothing published"
                )
            env = merged_env(source.env, {}, unset_env)
            self._raise_injected_failure()
            target.latest_env = env
            last = target.last_published()
            number = str(int(last[0]) + 1) if last else "1"
            target.versions[number] = _Version(
                env=dict(env), description=description, code_sha256=target.code_sha256
            )
            self.published_fallbacks += 1
            return PublishedVersion(
                function=function, version=number, code_sha256=target.code_sha256, description=description
            )

    def change_latest_code(self, function: str, marker: str) -> None:
        """Someone deploys other code to $LATEST (published versions keep theirs)."""
        with self._lock:
            self._require_function(function).code_sha256 = _code_sha(f"{function}:{marker}")

    # ------------------------------------------------------------ lookups (call with the lock held)
    def _require_function(self, function: str) -> _Function:
        found = self._functions.get(function)
        if found is None:
            raise FunctionNotFound(f"function {function} not found in {self.region}")
        return found

    def _require_version(self, function: str, version: str) -> _Version:
        found = self._require_function(function).versions.get(version)
        if found is None:
            raise VersionNotFound(f"{function} has no published version {version} in {self.region}")
        return found

    def _require_alias(self, function: str, alias: str) -> AliasState:
        self._require_function(function)
        found = self._aliases.get((function, alias))
        if found is None:
            raise AliasNotFound(f"alias {alias} not found on function {function} in {self.region}")
        return found

    def _raise_injected_failure(self) -> None:
        error, self._fail_next = self._fail_next, None
        if error is not None:
            raise error


def lego_api_world(region: str = "us-east-1", *, function: str = LEGO_API) -> FakeTraffic:
    """The seed's world (see canary_demo.seed): v1 without Redis, v2 with REDIS_URL, production → v1."""
    fake = FakeTraffic(region)
    fake.add_function(function, versions=["1"], env=BASE_ENV)
    fake.publish_version(function, set_env=REDIS_ENV, unset_env=[], description="")
    fake.add_alias(function, PRODUCTION_ALIAS, "1")
    return fake


def _new_revision() -> str:
    return str(uuid.uuid4())


def _code_sha(name: str) -> str:
    # Lambda's CodeSha256 is the base64 SHA-256 of the deployment package; any stable stand-in will do.
    return base64.b64encode(hashlib.sha256(name.encode()).digest()).decode()
