# -*- test-case-name: tests.unit.test_redis_store -*-
"""
Rate-limit state shared by many llmedge instances, in Redis.

Several instances behind one load balancer, each deciding from its own
memory, would give a key its limit once per instance. Here every instance
decides against one TAT per bucket (see L{llmedge.limits.gcra}) kept in
Redis, with one atomic Lua script per decision: no lock, no race between
instances, one round trip. The script reads Redis's own clock (C{TIME}),
so instances whose clocks disagree still decide against one clock; and it
gives the key a time to live ending when the bucket would be full again,
so Redis holds only the buckets in use.

The arithmetic is split so it is written once for the answer: the script
does only what must be atomic (read the TAT, admit or not, write the new
TAT) with the same floating-point operations as L{gcra.decide}, and returns
the TAT it read and the "now" it used. The L{Decision} (C{remaining},
C{retry_after}, C{reset_after}) is then L{gcra.decide} itself applied to
those two numbers, so the rate-limit headers are the memory store's by
construction. Numbers cross as 17-digit (or C{repr}) text, which carries a
double exactly, so the script and L{gcra.decide} agree bit for bit on
whether the request is admitted (tests check that on a sequence).

When Redis cannot decide, because it is unreachable, slow (every decision
is bounded by C{timeout} seconds on the injected reactor) or failing, the
store follows its policy. I{Fail-open} admits the request, decided as for
a full bucket (the headers show the limit, but the client is not held to
it); I{fail-closed} fails with L{StoreUnavailable}, which the web layer
answers with 503. While no connection is up, decisions are made at once,
without waiting for the timeout. One line is logged when Redis becomes
unavailable and one when it is back, never one per request; L{watch} lets
the metrics count the rest.

The connection (L{llmedge.redis_connection}, the cache's too) reconnects
by itself, so limiting resumes when Redis returns.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import txredisapi
from twisted.internet.defer import Deferred, TimeoutError, fail, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from llmedge.limits.gcra import EPSILON, Decision, Limit, check_cost, decide
from llmedge.limits.store import IRateLimitStore, StoreUnavailable
from llmedge.redis_connection import RedisAddress, RedisService, connect, connected

#: Prefix of every key llmedge writes, so the database can be shared.
KEY_PREFIX = "llmedge:ratelimit:"
# What both scripts start with: Redis's clock as C{now}, the bucket's
# stored TAT (a string, or false), and C{keep(tat)}, which stores a TAT until
# the bucket would be full again. Floats go out as 17 significant digits,
# which Python's float() reads back exactly.
_PRELUDE = """
if redis.replicate_commands then redis.replicate_commands() end
local time = redis.call('TIME')
local now = tonumber(time[1]) + tonumber(time[2]) / 1000000
local stored = redis.call('GET', KEYS[1])
local function keep(tat)
  redis.call('SET', KEYS[1], string.format('%.17g', tat))
  redis.call('PEXPIRE', KEYS[1], math.ceil((tat - now) * 1000))
end
"""

# One decision, atomically. KEYS[1] is the bucket; ARGV holds the interval,
# the capacity in seconds, the cost and the tolerance, as Python's repr()
# wrote them. The operations are gcra.decide's, in its order; the reply is
# {now, the TAT read (nil for none), 1 if admitted else 0}.
SCRIPT = _PRELUDE + """
local interval = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local epsilon = tonumber(ARGV[4])
local start = now
if stored then
  local tat = tonumber(stored)
  if tat > now then start = tat end
end
local new_tat = start + cost * interval
if now + epsilon >= new_tat - capacity then
  keep(new_tat)
  return {string.format('%.17g', now), stored, 1}
end
return {string.format('%.17g', now), stored, 0}
"""
SCRIPT_SHA = hashlib.sha1(SCRIPT.encode()).hexdigest()

# Settle a reservation: gcra.adjusted, atomically. ARGV: the interval and
# the amount (negative: a refund). Never refuses; replies 1 if a TAT remains.
ADJUST_SCRIPT = _PRELUDE + """
local interval = tonumber(ARGV[1])
local amount = tonumber(ARGV[2])
local base = now
if stored then
  local tat = tonumber(stored)
  if tat > now then base = tat end
elseif amount < 0 then
  return 0
end
local new_tat = base + amount * interval
if new_tat <= now then
  redis.call('DEL', KEYS[1])
  return 0
end
keep(new_tat)
return 1
"""
ADJUST_SHA = hashlib.sha1(ADJUST_SCRIPT.encode()).hexdigest()

@implementer(IRateLimitStore)
class RedisStore(RedisService):
    """
    An L{IRateLimitStore} keeping one TAT per bucket in Redis.

    As a L{Service}, it connects when started and closes its connection
    when stopped.

    @param fail_open: the policy when Redis cannot decide: admit (L{True})
        or fail with L{StoreUnavailable}.
    @param connect: makes the connection handler; L{connect} unless a test
        gives another.
    """

    _log = Logger()

    def __init__(
        self,
        clock: IReactorTime,
        address: RedisAddress,
        timeout: float = 0.25,
        fail_open: bool = True,
        connect: Callable = connect,
    ) -> None:
        super().__init__(clock, address, timeout, connect)
        self.fail_open = fail_open
        self._watchers: list[tuple[Callable[[], None], Callable[[bool], None]]] = []

    def watch(self, errored: Callable[[], None], changed: Callable[[bool], None]) -> None:
        """
        Call C{errored()} for each call Redis did not answer as it should,
        and C{changed(available)} now and whenever L{available} changes.
        """
        self._watchers.append((errored, changed))
        changed(self.available)

    def acquire(self, bucket: str, limit: Limit, cost: int = 1) -> Deferred[Decision]:
        """
        See L{IRateLimitStore.acquire}.
        """
        check_cost(limit, cost)
        args = (repr(limit.interval), repr(limit.capacity_seconds), str(cost), repr(EPSILON))
        d = self._run(SCRIPT, SCRIPT_SHA, bucket, args)
        if d is None:
            # Known to be down and not reconnected yet: no use waiting.
            self._failed(None)
            return self._fallback(limit, cost)
        d.addCallback(self._decided, limit, cost)
        d.addErrback(self._give_up, limit, cost)
        return d

    def adjust(self, bucket: str, limit: Limit, amount: int) -> Deferred[None]:
        """
        See L{IRateLimitStore.adjust}. Best effort: while Redis is
        unavailable the settlement is dropped (the reservation then simply
        expires with the bucket's refill).
        """
        d = self._run(ADJUST_SCRIPT, ADJUST_SHA, bucket, (repr(limit.interval), str(amount)))
        if d is None:
            return succeed(None)
        return d.addCallbacks(lambda _: None, self._failed)

    def _run(self, script: str, sha: str, bucket: str, args) -> Deferred | None:
        """
        Run one of the scripts on C{bucket}'s key, bounded by the timeout;
        L{None} when Redis is known to be down.
        """
        redis = self._redis
        if redis is None or not (self.available or connected(redis)):
            return None
        key = KEY_PREFIX + bucket
        d = redis.evalsha(sha, [key], args)
        d.addErrback(self._load_script, redis, key, args, script, sha)
        return d.addTimeout(self.timeout, self._clock)

    def _load_script(self, failure: Failure, redis, key: str, args,
                     script: str, sha: str) -> Deferred:
        """
        Redis does not have the script (restarted, or C{SCRIPT FLUSH}):
        load it and run it again.
        """
        failure.trap(txredisapi.ScriptDoesNotExist)
        loaded = redis.script_load(script)
        return loaded.addCallback(lambda _: redis.evalsha(sha, [key], args))

    def _decided(self, reply, limit: Limit, cost: int) -> Decision:
        now, stored, admitted = reply
        decision = decide(None if stored is None else float(stored), float(now), limit, cost)
        self._succeeded()
        if decision.allowed != bool(admitted):
            # Cannot happen while the script and decide() compute alike.
            self._log.error("Rate-limit script and GCRA disagree: Redis admitted="
                            "{admitted}, decide() allowed={allowed}",
                            admitted=admitted, allowed=decision.allowed)
        return decision

    def _give_up(self, failure: Failure, limit: Limit, cost: int) -> Deferred[Decision]:
        self._failed(failure)
        return self._fallback(limit, cost)

    def _fallback(self, limit: Limit, cost: int) -> Deferred[Decision]:
        """
        Decide by the policy, Redis having failed to.
        """
        if self.fail_open:
            return succeed(decide(None, self._clock.seconds(), limit, cost))
        return fail(StoreUnavailable(f"Rate-limit Redis {self.address} is unavailable"))

    def _succeeded(self) -> None:
        if not self.available:
            self.available = True
            self._log.info("Rate-limit Redis {redis} is back: limits are shared again",
                           redis=str(self.address))
            for _, changed in self._watchers:
                changed(True)

    def _failed(self, failure: Failure | None, waited: float | None = None) -> None:
        for errored, _ in self._watchers:
            errored()
        if not self.available:
            return
        self.available = False
        if failure is None:
            reason = "not connected"
        elif failure.check(TimeoutError):
            reason = f"no answer within {waited or self.timeout:g} s"
        else:
            reason = failure.getErrorMessage() or failure.type.__name__
        if self.fail_open:
            policy = "admitting requests without limits (REDIS_FAILURE_POLICY=fail-open)"
        else:
            policy = "refusing requests with 503 (REDIS_FAILURE_POLICY=fail-closed)"
        self._log.error(
            "Rate-limit Redis {redis} is unavailable ({reason}): {policy} "
            "until it answers again",
            redis=str(self.address), reason=reason, policy=policy)
        for _, changed in self._watchers:
            changed(False)
