# -*- test-case-name: tests.unit.test_cache_key -*-
"""
The response cache of issue 16: the storage layer and the key, kept apart
from the request path that uses them. L{llmedge.cache.key} turns a request
into a digest (so a store never holds a body, and identical requests meet
under one name), L{llmedge.cache.store} is the contract every store keeps
(including "a store that cannot answer is bypassed, never a failed
request"), and L{llmedge.cache.memory} is the bounded in-process store; a
shared Redis store provides the same interface.
"""
