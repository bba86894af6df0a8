# -*- test-case-name: tests.unit.test_attempts -*-
"""
Routing: which deployment of a public model answers a request, and what
happens when it fails.

  - L{breaker}: the circuit breaker (closed, open, half-open with one probe);
  - L{health}: each deployment's breaker, load and latency, and each
    provider's own breaker, kept across reloads;
  - L{strategies}: the orders (ordered, weighted, least-busy, latency);
  - L{attempts}: one request's attempts, retries and the error answered;
  - L{tracked}: a stream counted as in flight until it ends;
  - L{router}: public model names to their routes, and the providers
    built from the configuration.
"""
