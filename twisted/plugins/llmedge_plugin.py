"""
The C{twistd llmedge} plugin. It names L{llmedge.tap} as a string so that
C{twistd --help} imports nothing heavy.
"""

from twisted.application.service import ServiceMaker

llmedge = ServiceMaker(
    "llmedge", "llmedge.tap", "An edge proxy for LLM APIs (OpenAI API in front).", "llmedge"
)
