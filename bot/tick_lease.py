"""Which replica ticks which deployment: one lease per deployment ("tick:<deployment id>") in the shared store.

Several `serve` processes on one table all run the soak loop. Each tick, a replica takes (or renews) the tick
lease of every live canary and watched promotion; the deployments whose lease another replica holds are skipped
this tick, so each one is fetched, judged and reported by one replica at a time, and the work spreads over the
replicas as deployments start. A holder keeps renewing its leases while it ticks; when it dies (kill -9, a lost
host) its leases run out after `ttl` (CANARY_LEASE_TTL) and the next replica to tick takes them over. A replica
that stops cleanly releases them, so another one takes over at its next tick.

The lease is also the fence of every decision a tick records (a verdict, a step, a promotion, a rollback): just
before writing, the holder renews it and checks that its fencing token is the one the tick began with. A replica
that stalled past its lease (a long GC pause, a suspended VM) finds another token and writes nothing; what it
read is also guarded by the deployment's revision, which every write bumps. Messages need no fence: each one is
claimed in the store and keyed in the outbox, so two replicas racing after a lease ran out still post it once.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from datetime import timedelta

from bot.ports import CanaryError, Clock, StorePort

log = logging.getLogger(__name__)

TICK_LEASE_PREFIX = "tick:"


class LeaseLost(CanaryError):
    """This replica no longer holds a deployment's tick lease: its decision is not recorded (another replica
    judges the deployment now)."""


def tick_lease_name(deployment_id: str) -> str:
    return f"{TICK_LEASE_PREFIX}{deployment_id}"


def replica_id(kind: str = "tick") -> str:
    """An owner name that says which process holds a lease: '<kind>-<host>-<pid>-<random>'."""
    return f"{kind}-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class TickLeases:
    """The tick leases one replica holds, with their fencing tokens (in memory: a restart holds none)."""

    def __init__(
        self,
        store: StorePort,
        clock: Clock,
        *,
        ttl: timedelta = timedelta(seconds=30),
        owner: str | None = None,
    ) -> None:
        if ttl <= timedelta(0):
            raise ValueError("the tick lease ttl must be positive")
        self._store = store
        self._clock = clock
        self._ttl = ttl.total_seconds()
        self.owner = owner or replica_id()
        self._tokens: dict[str, int] = {}
        self._mutex = threading.Lock()

    def take(self, deployment_id: str) -> bool:
        """Hold (or renew) the deployment's tick lease for `ttl`; False while another replica holds it."""
        token = self._store.acquire_lease(
            tick_lease_name(deployment_id), self.owner, self._clock.now(), self._ttl
        )
        with self._mutex:
            before = self._tokens.pop(deployment_id, None)
            if token is None:
                if before is not None:
                    log.info("%s: %s is ticked by another replica now", self.owner, deployment_id)
                return False
            self._tokens[deployment_id] = token
        if token != before:
            log.info("%s ticks %s (lease token %d)", self.owner, deployment_id, token)
        return True

    def holds(self, deployment_id: str) -> bool:
        """The fence before a tick records a decision: renew the lease, and True only when its token is still
        the one the tick began with (nobody took it meanwhile)."""
        with self._mutex:
            token = self._tokens.get(deployment_id)
        if token is None:
            return False
        renewed = self._store.acquire_lease(
            tick_lease_name(deployment_id), self.owner, self._clock.now(), self._ttl
        )
        if renewed == token:
            return True
        with self._mutex:
            if renewed is None:
                self._tokens.pop(deployment_id, None)
            else:
                self._tokens[deployment_id] = renewed  # lapsed and taken again: judged afresh next tick
        log.warning(
            "%s lost the tick lease of %s (token %d, now %s): nothing recorded",
            self.owner,
            deployment_id,
            token,
            renewed,
        )
        return False

    def fence(self, deployment_id: str) -> None:
        """Raise LeaseLost unless `holds(deployment_id)`."""
        if not self.holds(deployment_id):
            raise LeaseLost(f"the tick lease of {deployment_id} is held by another replica now")

    def held(self) -> list[str]:
        """The deployments this replica took at its last look (their leases may have run out since)."""
        with self._mutex:
            return sorted(self._tokens)

    def keep_only(self, deployment_ids: set[str]) -> None:
        """Release the leases of deployments this replica no longer ticks (ended, watch closed)."""
        with self._mutex:
            gone = [d for d in self._tokens if d not in deployment_ids]
        self._release(gone)

    def release_all(self) -> None:
        """Let every lease this replica holds lapse now (a clean shutdown): another replica takes over at its
        next tick instead of waiting out the ttl."""
        with self._mutex:
            held = list(self._tokens)
        self._release(held)

    def _release(self, deployment_ids: list[str]) -> None:
        for deployment_id in deployment_ids:
            with self._mutex:
                self._tokens.pop(deployment_id, None)
            try:
                self._store.release_lease(tick_lease_name(deployment_id), self.owner)
            except Exception:
                log.warning("could not release the tick lease of %s", deployment_id, exc_info=True)


__all__ = ["TICK_LEASE_PREFIX", "LeaseLost", "TickLeases", "replica_id", "tick_lease_name"]
