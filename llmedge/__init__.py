"""
llmedge: an edge proxy for LLM APIs, on Twisted.

Clients speak the OpenAI HTTP API to it; it bounds, observes and forwards
their requests to model providers, or answers from its embedded mock.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
