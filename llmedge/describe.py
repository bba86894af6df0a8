# -*- test-case-name: tests.unit.test_cli -*-
"""
The effective configuration as an operator reads it, secrets redacted:
printed by C{llmedge check-config} and logged by the daemon at start-up,
so both show the same thing.
"""

from __future__ import annotations

import json
import re
from typing import Any

from llmedge.config import Config
from llmedge.keys import KeyRing
from llmedge.settings import SETTINGS


def describe(config: Config, keys: KeyRing) -> list[str]:
    """
    The effective configuration as lines an operator reads: every setting
    in L{SETTINGS} order as C{name = value} (TOML syntax, secrets replaced
    by a count), then listeners, providers, model routes and key ids.
    """
    lines = [f"# file: {config.source or '(none)'}"]
    for setting in SETTINGS:
        value = config[setting.name]
        if setting.name == "server.address":
            host, port = value
            value = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        shown = _redacted(value) if setting.secret else _toml(value)
        lines.append(f"{setting.name} = {shown}")
    for endpoint in config.listen:
        lines.append(f"listen {endpoint} (from {config.listen_origin})")
    for name, provider in config.providers.items():
        lines.append(f"provider {name}: kind {provider.kind}")
    for name, targets in config.models.items():
        routes = ", ".join(f"{t.provider}/{t.model}" for t in targets)
        lines.append(f"model {name} -> {routes}")
    for key in keys:
        limits = [f"{k} {v}" for k, v in (("rpm", key.rpm), ("burst", key.burst)) if v]
        lines.append(f"key {key.id}" + (f": {', '.join(limits)}" if limits else ""))
    return lines


def _redacted(value: Any) -> str:
    """
    A secret setting as check-config shows it: key lists by their count, a
    URL with its password masked (the rest helps to find a typo).
    """
    if isinstance(value, tuple | list):
        return f"<{len(value)} key{'' if len(value) == 1 else 's'}>"
    if isinstance(value, str) and "://" in value:
        return _toml(value)
    return "<redacted>"


_PASSWORD = re.compile(r"^([a-z][a-z0-9+.-]*://[^/@:]*:)[^/@]*@", re.IGNORECASE)


def _toml(value: Any) -> str:
    """
    A value as it would be written in the TOML file; a URL's password (as
    in C{redis_url}) is masked.
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(_PASSWORD.sub(r"\1***@", value), ensure_ascii=False)
    return "[" + ", ".join(_toml(v) for v in value) + "]"
