"""The one parser of canary verbs, shared by the CLI (`canary-bot start …`) and Slack (`/canary start …`).

It turns words into pydantic models and every mistake into a UsageError that says what was wrong and
shows the verb's usage line. It never touches AWS.
"""

from __future__ import annotations

import argparse
import re
import shlex
import unicodedata
from collections.abc import Callable
from datetime import timedelta
from typing import Annotated, Literal, NoReturn

from pydantic import BaseModel, ConfigDict, Field

from bot.units import UnitError, Weight, parse_duration, parse_percent

FUNCTION_NAME = re.compile(
    r"^[A-Za-z0-9_-]{1,64}$|^arn:aws[a-z-]*:lambda:[a-z0-9-]+:\d{12}:function:[A-Za-z0-9_-]+$"
)
VERSION = re.compile(r"^[1-9][0-9]{0,9}$")
# Lambda's own rule for alias names: letters, digits, - and _, not all digits, at most 128.
ALIAS_NAME = re.compile(r"^(?![0-9]+$)[A-Za-z0-9_-]{1,128}$")
# A fallback removes a few variables (the seed's: REDIS_URL); more is a mistake, and would not fit a button.
MAX_FALLBACK_KEYS = 10
ENV_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")

USAGE: dict[str, str] = {
    "start": "start FUNCTION [VERSION] [--alias ALIAS] [--weight 5%] [--soak 1h] "
    "[--publish [--set KEY=VALUE ...] [--unset KEY ...]] [--override-alarms REASON] [--override-lock REASON] "
    "[--override-preflight REASON]",
    "preflight": "preflight FUNCTION [VERSION] [--alias ALIAS]",
    "status": "status [FUNCTION] [--alias ALIAS]",
    "promote": "promote FUNCTION [--alias ALIAS]",
    "rollback": "rollback FUNCTION --reason TEXT [--alias ALIAS]",
    "history": "history FUNCTION [--alias ALIAS] [--limit N]",
    "weight": "weight FUNCTION PERCENT [--alias ALIAS]",
    "hold": "hold FUNCTION [--reason TEXT] [--alias ALIAS]",
    "resume": "resume FUNCTION [--alias ALIAS]",
    "extend": "extend FUNCTION DURATION [--alias ALIAS]",
    "revert": "revert FUNCTION --reason TEXT [--alias ALIAS]",
    "fallback": "fallback FUNCTION --unset KEY [--unset KEY ...] [--reason TEXT] [--alias ALIAS]",
    "lock": "lock FUNCTION --reason TEXT [--alias ALIAS]",
    "unlock": "unlock FUNCTION [--alias ALIAS]",
    "help": "help [VERB]",
}
SUMMARY: dict[str, str] = {
    "start": "preview a canary (optionally publishing a new version) and start it on confirmation",
    "preflight": "the pre-deployment checklist of a function (and version), each check ✅ / 🔴 / ⚠️",
    "status": "live canaries with weights, soak progress and the latest figures",
    "promote": "send 100% of the alias to the canary version",
    "rollback": "send 100% of the alias back to the stable version",
    "history": "past canaries of a function and every step of each, with who did it",
    "weight": "change the canary's share of traffic mid-flight",
    "hold": "pause automatic decisions (traffic stays as it is)",
    "resume": "resume automatic decisions after a hold",
    "extend": "lengthen the current soak",
    "revert": "after a promotion: send 100% of the alias back to the version that served before",
    "fallback": "emergency: publish the serving code without the given variables and send it 100%",
    "lock": "refuse new canaries, promotions, weight changes and resumes until unlocked",
    "unlock": "lift the deploy locks (a person's, and those rollbacks left on their versions)",
    "help": "this help",
}
VERBS = tuple(USAGE)


class UsageError(ValueError):
    """Bad input: `message` says what was wrong, `usage` is the verb's usage line."""

    def __init__(self, message: str, verb: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.verb = verb

    @property
    def usage(self) -> str:
        if self.verb in USAGE:
            return f"usage: {USAGE[self.verb]}"
        return "usage: " + " | ".join(VERBS)


class _Base(BaseModel):
    model_config = ConfigDict(frozen=True)


class StartArgs(_Base):
    verb: Literal["start"] = "start"
    function: str
    version: str | None = None
    alias: str | None = None
    weight: Weight | None = None
    soak: timedelta | None = None
    publish: bool = False
    set_env: dict[str, str] = Field(default_factory=dict)
    unset_env: tuple[str, ...] = ()
    override_alarms: str | None = None
    override_lock: str | None = None
    override_preflight: str | None = None


class PreflightArgs(_Base):
    verb: Literal["preflight"] = "preflight"
    function: str
    version: str | None = None
    alias: str | None = None


class StatusArgs(_Base):
    verb: Literal["status"] = "status"
    function: str | None = None
    alias: str | None = None


class TargetArgs(_Base):
    verb: Literal["promote", "resume"]
    function: str
    alias: str | None = None


class RollbackArgs(_Base):
    verb: Literal["rollback"] = "rollback"
    function: str
    alias: str | None = None
    reason: str | None = None


class HoldArgs(_Base):
    verb: Literal["hold"] = "hold"
    function: str
    alias: str | None = None
    reason: str | None = None


class HistoryArgs(_Base):
    verb: Literal["history"] = "history"
    function: str
    alias: str | None = None
    limit: int = 10


class WeightArgs(_Base):
    verb: Literal["weight"] = "weight"
    function: str
    weight: Weight
    alias: str | None = None


class ExtendArgs(_Base):
    verb: Literal["extend"] = "extend"
    function: str
    by: timedelta
    alias: str | None = None


class RevertArgs(_Base):
    verb: Literal["revert"] = "revert"
    function: str
    alias: str | None = None
    reason: str


class FallbackArgs(_Base):
    verb: Literal["fallback"] = "fallback"
    function: str
    unset_env: tuple[str, ...]
    alias: str | None = None
    reason: str | None = None


class LockArgs(_Base):
    verb: Literal["lock"] = "lock"
    function: str
    alias: str | None = None
    reason: str


class UnlockArgs(_Base):
    verb: Literal["unlock"] = "unlock"
    function: str
    alias: str | None = None


class HelpArgs(_Base):
    verb: Literal["help"] = "help"
    topic: str | None = None


VerbArgs = Annotated[
    StartArgs
    | PreflightArgs
    | StatusArgs
    | TargetArgs
    | RollbackArgs
    | HoldArgs
    | HistoryArgs
    | WeightArgs
    | ExtendArgs
    | RevertArgs
    | FallbackArgs
    | LockArgs
    | UnlockArgs
    | HelpArgs,
    Field(discriminator="verb"),
]


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of printing and exiting."""

    def __init__(self, verb: str, **kwargs: object) -> None:
        super().__init__(prog=verb, add_help=False, exit_on_error=False, allow_abbrev=False, **kwargs)  # type: ignore[arg-type]
        self.verb = verb

    def error(self, message: str) -> NoReturn:
        raise UsageError(_humanise(message), self.verb)


def _humanise(message: str) -> str:
    message = message.replace("the following arguments are required:", "missing")
    message = message.replace("unrecognized arguments:", "unknown option or extra word:")
    return message


def parse_weight(text: str, verb: str = "start") -> float:
    """A canary weight: '5%' or '2.5%' (the % is required, as everywhere); strictly between 0% and 100%."""
    try:
        fraction = parse_percent(text, bounded=False)
    except UnitError as exc:
        raise UsageError(f"weight: {exc}", verb) from exc
    pct = fraction * 100
    if not 0 < pct < 100:
        raise UsageError(
            f"weight {text!r} must be strictly between 0% and 100% "
            "(0% routes nothing to the canary; 100% is a promote)",
            verb,
        )
    return round(pct / 100, 6)


def _duration(text: str, verb: str, what: str) -> timedelta:
    try:
        value = parse_duration(text)
    except UnitError as exc:
        raise UsageError(f"{what} {exc}", verb) from exc
    if value <= timedelta(0):
        raise UsageError(f"{what} must be longer than 0 (try 1h or 30m)", verb)
    return value


def _function(text: str, verb: str) -> str:
    if not FUNCTION_NAME.match(text):
        raise UsageError(f"{text!r} is not a Lambda function name (letters, digits, - and _)", verb)
    return text


def split_words(text: str) -> list[str]:
    """Split like a shell, after undoing Slack's smart quotes."""
    text = text.replace("“", '"').replace("”", '"').replace("‘", "'").replace("’", "'")
    try:
        return shlex.split(text)
    except ValueError as exc:
        raise UsageError(f"could not read the words: {exc} (unbalanced quotes?)") from exc


def parse_text(text: str) -> VerbArgs:
    """Slack: the text after `/canary`."""
    return parse_words(split_words(text))


def parse_words(words: list[str]) -> VerbArgs:
    if not words:
        return HelpArgs()
    verb, rest = words[0].lower(), words[1:]
    if verb in ("-h", "--help"):
        return HelpArgs()
    if verb not in USAGE:
        raise UsageError(f"unknown verb {words[0]!r}; verbs are: {', '.join(VERBS)}")
    if "-h" in rest or "--help" in rest:
        return HelpArgs(topic=verb)
    return _PARSERS[verb](rest)


def _parse(parser: _Parser, rest: list[str]) -> argparse.Namespace:
    try:
        return parser.parse_args(rest)
    except argparse.ArgumentError as exc:
        raise UsageError(_humanise(str(exc)), parser.verb) from exc


def _with_alias(parser: _Parser) -> _Parser:
    parser.add_argument("--alias", type=_alias_name)
    return parser


def _alias_name(text: str) -> str:
    if not ALIAS_NAME.match(text):
        # argparse turns this into "argument --alias: invalid _alias_name value: '…'"; say it plainly instead.
        raise argparse.ArgumentTypeError(f"{text!r} is not a Lambda alias name (letters, digits, - and _)")
    return text


def _parse_start(rest: list[str]) -> StartArgs:
    p = _with_alias(_Parser("start"))
    p.add_argument("function")
    p.add_argument("version", nargs="?")
    p.add_argument("--weight")
    p.add_argument("--soak")
    p.add_argument("--publish", action="store_true")
    p.add_argument("--set", action="append", default=[], dest="set_env", metavar="KEY=VALUE")
    p.add_argument("--unset", action="append", default=[], dest="unset_env", metavar="KEY")
    p.add_argument("--override-alarms", metavar="REASON")
    p.add_argument("--override-lock", metavar="REASON")
    p.add_argument("--override-preflight", metavar="REASON")
    ns = _parse(p, rest)
    function = _function(ns.function, "start")
    if ns.version is not None and not VERSION.match(ns.version):
        raise UsageError(f"version {ns.version!r} must be a published version number such as 2", "start")
    if ns.version is not None and ns.publish:
        raise UsageError("give either a VERSION or --publish, not both", "start")
    if (ns.set_env or ns.unset_env) and not ns.publish:
        raise UsageError(
            "--set and --unset change the configuration of a new version: add --publish", "start"
        )
    set_env: dict[str, str] = {}
    for item in ns.set_env:
        key, sep, value = item.partition("=")
        if not sep or not ENV_KEY.match(key):
            raise UsageError(f"--set {item!r} must look like KEY=VALUE (KEY: letters, digits, _)", "start")
        set_env[key] = value
    for key in ns.unset_env:
        if not ENV_KEY.match(key):
            raise UsageError(f"--unset {key!r} is not an environment variable name", "start")
        if key in set_env:
            raise UsageError(f"{key} is both set and unset", "start")
    if ns.override_alarms is not None and not ns.override_alarms.strip():
        raise UsageError("--override-alarms needs a reason, which is audited", "start")
    if ns.override_lock is not None and not ns.override_lock.strip():
        raise UsageError("--override-lock needs a reason, which is audited", "start")
    if ns.override_preflight is not None and not ns.override_preflight.strip():
        raise UsageError("--override-preflight needs a reason, which is audited", "start")
    return StartArgs(
        function=function,
        version=ns.version,
        alias=ns.alias,
        weight=parse_weight(ns.weight) if ns.weight is not None else None,
        soak=_duration(ns.soak, "start", "soak") if ns.soak is not None else None,
        publish=ns.publish,
        set_env=set_env,
        unset_env=tuple(ns.unset_env),
        override_alarms=ns.override_alarms,
        override_lock=_reason(ns.override_lock, "start"),
        override_preflight=ns.override_preflight,
    )


def _parse_preflight(rest: list[str]) -> PreflightArgs:
    p = _with_alias(_Parser("preflight"))
    p.add_argument("function")
    p.add_argument("version", nargs="?")
    ns = _parse(p, rest)
    function = _function(ns.function, "preflight")
    if ns.version is not None and not VERSION.match(ns.version):
        raise UsageError(
            f"version {ns.version!r} must be a published version number such as 2 (none: $LATEST)",
            "preflight",
        )
    return PreflightArgs(function=function, version=ns.version, alias=ns.alias)


def _parse_status(rest: list[str]) -> StatusArgs:
    p = _with_alias(_Parser("status"))
    p.add_argument("function", nargs="?")
    ns = _parse(p, rest)
    return StatusArgs(function=_function(ns.function, "status") if ns.function else None, alias=ns.alias)


def _target(verb: Literal["promote", "resume"]) -> _Parser:
    p = _with_alias(_Parser(verb))
    p.add_argument("function")
    return p


def _parse_promote(rest: list[str]) -> TargetArgs:
    ns = _parse(_target("promote"), rest)
    return TargetArgs(verb="promote", function=_function(ns.function, "promote"), alias=ns.alias)


def _parse_resume(rest: list[str]) -> TargetArgs:
    ns = _parse(_target("resume"), rest)
    return TargetArgs(verb="resume", function=_function(ns.function, "resume"), alias=ns.alias)


def _reason(text: str | None, verb: str) -> str | None:
    if text is None:
        return None
    if not text.strip():
        raise UsageError("--reason must not be empty", verb)
    if len(text) > 500:
        raise UsageError("--reason is longer than 500 characters", verb)
    hidden = next((c for c in text if _is_hidden(c)), None)
    if hidden is not None:
        # Control and direction-override characters hide or reorder what people read in the audit and Slack.
        raise UsageError(
            f"--reason contains an invisible character (U+{ord(hidden):04X}): type plain text", verb
        )
    return text.strip()


# Bidirectional overrides and isolates, which make text read in another order than it is stored.
_BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _is_hidden(c: str) -> bool:
    """Control characters (a tab or a line break is fine) and the bidirectional controls."""
    return (unicodedata.category(c) == "Cc" and c not in "\t\n") or c in _BIDI_CONTROLS


def _parse_rollback(rest: list[str]) -> RollbackArgs:
    p = _with_alias(_Parser("rollback"))
    p.add_argument("function")
    p.add_argument("--reason")
    ns = _parse(p, rest)
    return RollbackArgs(
        function=_function(ns.function, "rollback"), alias=ns.alias, reason=_reason(ns.reason, "rollback")
    )


def _parse_hold(rest: list[str]) -> HoldArgs:
    p = _with_alias(_Parser("hold"))
    p.add_argument("function")
    p.add_argument("--reason")
    ns = _parse(p, rest)
    return HoldArgs(
        function=_function(ns.function, "hold"), alias=ns.alias, reason=_reason(ns.reason, "hold")
    )


def _parse_history(rest: list[str]) -> HistoryArgs:
    p = _with_alias(_Parser("history"))
    p.add_argument("function")
    p.add_argument("--limit", default="10")
    ns = _parse(p, rest)
    if not str(ns.limit).isdigit() or not 1 <= int(ns.limit) <= 100:
        raise UsageError(f"--limit {ns.limit!r} must be a whole number from 1 to 100", "history")
    return HistoryArgs(function=_function(ns.function, "history"), alias=ns.alias, limit=int(ns.limit))


def _parse_weight(rest: list[str]) -> WeightArgs:
    p = _with_alias(_Parser("weight"))
    p.add_argument("function")
    p.add_argument("percent")
    ns = _parse(p, rest)
    return WeightArgs(
        function=_function(ns.function, "weight"), weight=parse_weight(ns.percent, "weight"), alias=ns.alias
    )


def _parse_extend(rest: list[str]) -> ExtendArgs:
    p = _with_alias(_Parser("extend"))
    p.add_argument("function")
    p.add_argument("duration")
    ns = _parse(p, rest)
    by = _duration(ns.duration, "extend", "duration")
    if by > timedelta(days=1):
        raise UsageError("extend by at most 1d at a time", "extend")
    return ExtendArgs(function=_function(ns.function, "extend"), by=by, alias=ns.alias)


def _required_reason(text: str | None, verb: str) -> str:
    reason = _reason(text, verb)
    if reason is None:
        raise UsageError("--reason is required: say why, it goes in the audit log and the messages", verb)
    return reason


def _parse_revert(rest: list[str]) -> RevertArgs:
    p = _with_alias(_Parser("revert"))
    p.add_argument("function")
    p.add_argument("--reason")
    ns = _parse(p, rest)
    function = _function(ns.function, "revert")
    return RevertArgs(function=function, alias=ns.alias, reason=_required_reason(ns.reason, "revert"))


def _parse_fallback(rest: list[str]) -> FallbackArgs:
    p = _with_alias(_Parser("fallback"))
    p.add_argument("function")
    p.add_argument("--unset", action="append", default=[], dest="unset_env", metavar="KEY")
    p.add_argument("--reason")
    ns = _parse(p, rest)
    function = _function(ns.function, "fallback")
    if not ns.unset_env:
        raise UsageError("say which variables to remove: --unset KEY (e.g. --unset REDIS_URL)", "fallback")
    if len(set(ns.unset_env)) > MAX_FALLBACK_KEYS:
        raise UsageError(f"at most {MAX_FALLBACK_KEYS} --unset keys in one fallback", "fallback")
    for key in ns.unset_env:
        if not ENV_KEY.match(key):
            raise UsageError(f"--unset {key!r} is not an environment variable name", "fallback")
    return FallbackArgs(
        function=function,
        unset_env=tuple(dict.fromkeys(ns.unset_env)),
        alias=ns.alias,
        reason=_reason(ns.reason, "fallback"),
    )


def _parse_lock(rest: list[str]) -> LockArgs:
    p = _with_alias(_Parser("lock"))
    p.add_argument("function")
    p.add_argument("--reason")
    ns = _parse(p, rest)
    function = _function(ns.function, "lock")
    return LockArgs(function=function, alias=ns.alias, reason=_required_reason(ns.reason, "lock"))


def _parse_unlock(rest: list[str]) -> UnlockArgs:
    p = _with_alias(_Parser("unlock"))
    p.add_argument("function")
    ns = _parse(p, rest)
    return UnlockArgs(function=_function(ns.function, "unlock"), alias=ns.alias)


def _parse_help(rest: list[str]) -> HelpArgs:
    if len(rest) > 1:
        raise UsageError("help takes at most one verb", "help")
    if rest and rest[0].lower() not in USAGE:
        raise UsageError(f"no verb {rest[0]!r}; verbs are: {', '.join(VERBS)}", "help")
    return HelpArgs(topic=rest[0].lower() if rest else None)


_PARSERS: dict[str, Callable[[list[str]], VerbArgs]] = {
    "start": _parse_start,
    "preflight": _parse_preflight,
    "status": _parse_status,
    "promote": _parse_promote,
    "rollback": _parse_rollback,
    "history": _parse_history,
    "weight": _parse_weight,
    "hold": _parse_hold,
    "resume": _parse_resume,
    "extend": _parse_extend,
    "revert": _parse_revert,
    "fallback": _parse_fallback,
    "lock": _parse_lock,
    "unlock": _parse_unlock,
    "help": _parse_help,
}


def help_text(topic: str | None = None, prefix: str = "/canary") -> str:
    if topic:
        return f"`{prefix} {USAGE[topic]}`\n{SUMMARY[topic]}"
    lines = [f"`{prefix} {USAGE[v]}` — {SUMMARY[v]}" for v in VERBS]
    return "\n".join(lines)
