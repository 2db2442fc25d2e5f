"""Lambda alias routing and version publishing through boto3: the real TrafficPort.

Every write is guarded: UpdateAlias by the alias's RevisionId, UpdateFunctionConfiguration and PublishVersion
by $LATEST's RevisionId and CodeSha256. A guard that fails means someone else changed the thing under us; we
stop and say so, and never retry (botocore does not retry HTTP 412 either). All botocore errors are translated
in one place, `_translating`, so the service only ever sees bot.ports errors.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypedDict

from botocore.exceptions import BotoCoreError, ClientError, WaiterError

from bot.model import AliasState
from bot.ports import (
    AliasDrift,
    AliasNotFound,
    AwsFailure,
    CanaryError,
    FunctionNotFound,
    InvalidChange,
    PublishConflict,
    PublishedVersion,
    VersionNotFound,
)

if TYPE_CHECKING:
    from mypy_boto3_lambda import LambdaClient
    from mypy_boto3_lambda.type_defs import AliasConfigurationResponseTypeDef, WaiterConfigTypeDef

NOT_FOUND = "ResourceNotFoundException"
PRECONDITION_FAILED = "PreconditionFailedException"
UPDATE_IN_PROGRESS = "ResourceConflictException"
# Lambda allows one additional version on an alias; a canary needs no more.
MAX_EXTRA_VERSIONS = 1


def validate_routing(function: str, alias: str, version: str, weights: Mapping[str, float]) -> None:
    """Refuse routing Lambda would reject or a canary never means (moto accepts all of it)."""
    where = f"{function}:{alias}"
    if len(weights) > MAX_EXTRA_VERSIONS:
        listed = ", ".join(f"v{v}" for v in sorted(weights))
        raise InvalidChange(f"{where}: at most one extra version may take traffic, got {listed}")
    for extra, weight in weights.items():
        if extra == version:
            raise InvalidChange(f"{where}: v{version} is the primary version; it cannot also have a weight")
        # `not 0 < w < 1` also catches NaN.
        if not 0 < weight < 1:
            raise InvalidChange(f"{where}: weight {weight!r} for v{extra} must be strictly between 0 and 1")
    if sum(weights.values()) >= 1:
        raise InvalidChange(f"{where}: extra weights must leave some traffic on v{version}")


def is_published_version(qualifier: str) -> bool:
    """'7' is; '$LATEST' and alias names are not (and cannot take weighted alias traffic)."""
    return qualifier.isascii() and qualifier.isdigit()


def check_env_change(set_env: Mapping[str, str], unset_env: Sequence[str]) -> None:
    overlap = set(set_env) & set(unset_env)
    if overlap:
        raise InvalidChange(f"cannot both set and unset {', '.join(sorted(overlap))}")


def merged_env(
    current: Mapping[str, str], set_env: Mapping[str, str], unset_env: Sequence[str]
) -> dict[str, str]:
    """`current` with `unset_env` dropped (absent keys are fine) and `set_env` applied."""
    check_env_change(set_env, unset_env)
    dropped = set(unset_env)
    env = {key: value for key, value in current.items() if key not in dropped}
    env.update(set_env)
    return env


@dataclass(frozen=True)
class _Conflict:
    """Which AWS error codes mean 'changed under us' for one call, and what we raise for them."""

    codes: frozenset[str]
    error: Callable[[], CanaryError]


class LambdaTraffic:
    """TrafficPort over a boto3 Lambda client (build it with bot.aws.clients.lambda_client)."""

    def __init__(
        self, client: LambdaClient, *, update_wait_delay_seconds: int = 1, update_wait_max_attempts: int = 300
    ) -> None:
        self._client = client
        self._region = client.meta.region_name
        self._update_wait: WaiterConfigTypeDef = {
            "Delay": update_wait_delay_seconds,
            "MaxAttempts": update_wait_max_attempts,
        }

    # ------------------------------------------------------------ reads
    def get_alias(self, function: str, alias: str) -> AliasState:
        with self._translating(f"reading alias {function}:{alias}", function, alias=alias):
            response = self._client.get_alias(FunctionName=function, Name=alias)
        return _alias_state(function, alias, response)

    def environment_keys(self, function: str, version: str) -> frozenset[str]:
        try:
            with self._translating(f"reading {function} v{version}", function):
                configuration = self._client.get_function_configuration(
                    FunctionName=function, Qualifier=version
                )
        except FunctionNotFound:
            self._require_function(function)  # Lambda says "not found" alike for a version and a function
            raise VersionNotFound(f"{function} has no published version {version}") from None
        return frozenset(_env(configuration))

    def version_exists(self, function: str, version: str) -> bool:
        if not is_published_version(version):
            self._require_function(function)
            return False
        try:
            with self._translating(f"reading {function} v{version}", function):
                self._client.get_function_configuration(FunctionName=function, Qualifier=version)
        except FunctionNotFound:
            # Lambda says "not found" alike for a missing version and a missing function.
            self._require_function(function)
            return False
        return True

    # ------------------------------------------------------------ routing
    def update_routing(
        self, function: str, alias: str, *, version: str, weights: Mapping[str, float], revision_id: str
    ) -> AliasState:
        """One UpdateAlias guarded by `revision_id`; returns the alias as Lambda wrote it.

        InvalidChange, FunctionNotFound, VersionNotFound, AliasNotFound and AliasDrift mean nothing was
        written. After AwsFailure re-read the alias: a write that timed out may still have landed.
        """
        validate_routing(function, alias, version, weights)
        # UpdateAlias on moto takes any version; real Lambda's refusal would read worse than ours.
        for wanted in (version, *weights):
            if not self.version_exists(function, wanted):
                raise VersionNotFound(f"{function} has no published version {wanted} in {self._region}")
        drift = _Conflict(
            frozenset({PRECONDITION_FAILED}),
            lambda: AliasDrift(
                f"alias {function}:{alias} changed since we read it (revision {revision_id}); "
                "nothing was written — re-read the alias before deciding again"
            ),
        )
        with self._translating(f"updating alias {function}:{alias}", function, alias=alias, conflict=drift):
            response = self._client.update_alias(
                FunctionName=function,
                Name=alias,
                FunctionVersion=version,
                RoutingConfig={"AdditionalVersionWeights": dict(weights)},
                RevisionId=revision_id,
            )
        return _alias_state(function, alias, response)

    # ------------------------------------------------------------ publishing
    def publish_version(
        self,
        function: str,
        *,
        set_env: Mapping[str, str],
        unset_env: Sequence[str],
        description: str,
    ) -> PublishedVersion:
        """Change $LATEST's environment, wait for the update, then publish exactly what we wrote.

        When neither code nor configuration changed since the last published version, real Lambda publishes
        nothing and answers with that existing version; we return it as is (moto always publishes a new one).
        """
        check_env_change(set_env, unset_env)
        conflict = _Conflict(
            frozenset({PRECONDITION_FAILED, UPDATE_IN_PROGRESS}),
            lambda: PublishConflict(f"$LATEST of {function} changed under us; nothing published"),
        )
        with self._translating(f"reading {function}", function):
            current = self._client.get_function_configuration(FunctionName=function)
        env = merged_env(_env(current), set_env, unset_env)

        with self._translating(f"updating the configuration of {function}", function, conflict=conflict):
            self._client.update_function_configuration(
                FunctionName=function, Environment={"Variables": env}, **_revision_guard(current)
            )
        self._wait_until_updated(function)

        with self._translating(f"reading {function}", function):
            updated = self._client.get_function_configuration(FunctionName=function)
        if _env(updated) != env:
            # Someone wrote $LATEST after our update; publishing now would ship their change, not ours.
            raise conflict.error()

        with self._translating(f"publishing {function}", function, conflict=conflict):
            published = self._client.publish_version(
                FunctionName=function,
                CodeSha256=updated["CodeSha256"],
                Description=description,
                **_revision_guard(updated),
            )
        return PublishedVersion(
            function=function,
            version=published["Version"],
            code_sha256=published["CodeSha256"],
            description=published.get("Description", description),
        )

    def publish_fallback(
        self, function: str, *, from_version: str, unset_env: Sequence[str], description: str
    ) -> PublishedVersion:
        """The code of `from_version`, its environment minus `unset_env`, published once per description.

        Looked up first (ListVersionsByFunction): a version already published with this description is the
        one a crashed attempt made, and it is returned without publishing again.
        """
        with self._translating(f"reading {function} v{from_version}", function):
            source = self._client.get_function_configuration(FunctionName=function, Qualifier=from_version)
        existing = self._published_with(function, description)
        if existing is not None:
            return existing
        conflict = _Conflict(
            frozenset({PRECONDITION_FAILED, UPDATE_IN_PROGRESS}),
            lambda: PublishConflict(f"$LATEST of {function} changed under us; nothing published"),
        )
        code = source["CodeSha256"]
        with self._translating(f"reading {function}", function):
            latest = self._client.get_function_configuration(FunctionName=function)
        if latest["CodeSha256"] != code:
            raise PublishConflict(
                f"$LATEST of {function} carries other code than v{from_version} (CodeSha256 "
                f"{latest['CodeSha256']}, not {code}); nothing published. Deploy v{from_version}'s code to "
                "$LATEST first, or fall back by hand"
            )
        env = merged_env(_env(source), {}, unset_env)
        with self._translating(f"updating the configuration of {function}", function, conflict=conflict):
            self._client.update_function_configuration(
                FunctionName=function, Environment={"Variables": env}, **_revision_guard(latest)
            )
        self._wait_until_updated(function)
        with self._translating(f"reading {function}", function):
            updated = self._client.get_function_configuration(FunctionName=function)
        if _env(updated) != env or updated["CodeSha256"] != code:
            raise conflict.error()
        with self._translating(f"publishing {function}", function, conflict=conflict):
            published = self._client.publish_version(
                FunctionName=function, CodeSha256=code, Description=description, **_revision_guard(updated)
            )
        return PublishedVersion(
            function=function,
            version=published["Version"],
            code_sha256=published["CodeSha256"],
            description=published.get("Description", description),
        )

    def _published_with(self, function: str, description: str) -> PublishedVersion | None:
        with self._translating(f"listing the versions of {function}", function):
            pages = self._client.get_paginator("list_versions_by_function").paginate(FunctionName=function)
            for page in pages:
                for version in page.get("Versions", []):
                    number = version.get("Version", "")
                    if is_published_version(number) and version.get("Description") == description:
                        return PublishedVersion(
                            function=function,
                            version=number,
                            code_sha256=version["CodeSha256"],
                            description=description,
                        )
        return None

    def _wait_until_updated(self, function: str) -> None:
        try:
            # function_updated_v2 polls GetFunction every second; older botocore only has the 5 s variant.
            if "function_updated_v2" in self._client.waiter_names:
                self._client.get_waiter("function_updated_v2").wait(
                    FunctionName=function, WaiterConfig=self._update_wait
                )
            else:
                self._client.get_waiter("function_updated").wait(
                    FunctionName=function, WaiterConfig=self._update_wait
                )
        except WaiterError as error:
            raise _update_failure(function, error) from error

    # ------------------------------------------------------------ errors
    def _require_function(self, function: str) -> None:
        if not self._function_exists(function):
            raise self._function_not_found(function)

    def _function_exists(self, function: str) -> bool:
        try:
            with self._translating(f"reading {function}", function):
                self._client.get_function_configuration(FunctionName=function)
        except FunctionNotFound:
            return False
        return True

    def _function_not_found(self, function: str) -> FunctionNotFound:
        return FunctionNotFound(f"function {function} not found in {self._region}")

    @contextmanager
    def _translating(
        self, action: str, function: str, *, alias: str | None = None, conflict: _Conflict | None = None
    ) -> Iterator[None]:
        try:
            yield
        except ClientError as error:
            raise self._translate(error, action, function, alias=alias, conflict=conflict) from error
        except BotoCoreError as error:  # connection errors and timeouts after retries
            raise AwsFailure(f"{action} failed: {error}") from error

    def _translate(
        self,
        error: ClientError,
        action: str,
        function: str,
        *,
        alias: str | None = None,
        conflict: _Conflict | None = None,
    ) -> CanaryError:
        code = _code(error)
        if conflict is not None and (code in conflict.codes or _status(error) == 412):
            return conflict.error()
        if code == NOT_FOUND:
            # One code for a missing function and a missing alias; only asking again tells them apart.
            if alias is not None and self._function_exists(function):
                return AliasNotFound(f"alias {alias} not found on function {function} in {self._region}")
            return self._function_not_found(function)
        return AwsFailure(f"{action} failed: {_describe(error)}")


def _alias_state(function: str, alias: str, response: AliasConfigurationResponseTypeDef) -> AliasState:
    revision = response.get("RevisionId")
    if not revision:
        raise AwsFailure(f"Lambda returned alias {function}:{alias} without a RevisionId to guard writes")
    weights = (response.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}
    return AliasState(
        function=function,
        alias=alias,
        version=response["FunctionVersion"],
        weights={version: float(weight) for version, weight in weights.items()},
        revision_id=revision,
    )


def _env(configuration: Mapping[str, Any]) -> dict[str, str]:
    # An empty environment comes back as no "Environment" at all.
    return dict((configuration.get("Environment") or {}).get("Variables") or {})


class _RevisionGuard(TypedDict, total=False):
    RevisionId: str


def _revision_guard(configuration: Mapping[str, Any]) -> _RevisionGuard:
    """RevisionId=<what we read>. Lambda always returns one; moto does not, and then there is none to pass."""
    revision = configuration.get("RevisionId")
    return {"RevisionId": revision} if revision else {}


def _update_failure(function: str, error: WaiterError) -> CanaryError:
    response: Mapping[str, Any] = error.last_response or {}
    if "Error" in response:
        details = response["Error"]
        return AwsFailure(
            f"waiting for {function} to update failed: {details.get('Code')}: {details.get('Message')}"
        )
    # function_updated_v2 answers GetFunction (nested), function_updated GetFunctionConfiguration (flat).
    configuration = response.get("Configuration", response)
    if configuration.get("LastUpdateStatus") == "Failed":
        reason = configuration.get("LastUpdateStatusReason") or "no reason given"
        code = configuration.get("LastUpdateStatusReasonCode")
        suffix = f" ({code})" if code else ""
        return AwsFailure(f"updating $LATEST of {function} failed: {reason}{suffix}; nothing published")
    return AwsFailure(f"{function} did not finish updating ({error}); nothing published")


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _status(error: ClientError) -> int | None:
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return int(status) if status is not None else None


def _describe(error: ClientError) -> str:
    details = error.response.get("Error", {})
    return f"{details.get('Code', 'Unknown')}: {details.get('Message', str(error))}"
