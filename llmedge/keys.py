# -*- test-case-name: tests.unit.test_keys -*-
"""
API keys as the daemon holds them: SHA-256 digests, never the plain key.

The configuration may give a key plain (C{sk-...}) or in its stored form
(C{sha256:<64 hex>}, what C{llmedge hash-key} prints); either way only the
digest is kept here, so a leaked configuration file, core dump or log line
holding the stored form does not let anyone call the API. A client always
presents the plain key: presenting the stored form is presenting a different
key, whose digest matches nothing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from llmedge.config import ConfigError

PREFIX = "sha256:"
_HEX = re.compile(r"[0-9a-fA-F]{64}")


def _digest(plain: str) -> bytes:
    """
    The SHA-256 of a key's UTF-8 bytes. Text decoded with
    C{surrogateescape} (as the environment and C{argv} are) hashes as the
    bytes it came from, rather than failing with a traceback.
    """
    try:
        data = plain.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raise ValueError("must be valid UTF-8 text") from None
    return hashlib.sha256(data).digest()


def hash_key(plain: str) -> str:
    """
    The stored form of a plain key, for C{API_KEYS} or C{[[auth.keys]]}.
    """
    return PREFIX + _digest(plain).hex()


def generate_key(randbytes: Callable[[int], bytes] = secrets.token_bytes) -> str:
    """
    A new key: 256 random bits, URL-safe so it survives headers, shells and
    configuration files without quoting, and prefixed so a leaked one is
    recognisable by secret scanners.
    """
    body = base64.urlsafe_b64encode(randbytes(32)).rstrip(b"=").decode("ascii")
    return "sk-llmedge-" + body


def parse_stored_key(text: str) -> bytes:
    """
    The digest a configured key stands for: C{sha256:<hex>} is already one,
    anything else is a plain key and is hashed.

    A malformed C{sha256:} form is refused rather than taken as a plain key,
    which would silently lock its client out. Messages never contain the
    text: it may be a secret with a typo in it.

    @raise ValueError: the text is empty or a malformed stored form.
    """
    if not text:
        raise ValueError("empty key")
    if text[: len(PREFIX)].lower() == PREFIX:
        hexdigits = text[len(PREFIX):]
        if not _HEX.fullmatch(hexdigits):
            raise ValueError("sha256: must be followed by 64 hexadecimal digits")
        return bytes.fromhex(hexdigits)
    return _digest(text)


@dataclass(frozen=True, repr=False)
class ApiKey:
    """
    One accepted key.

    @ivar id: what logs and metrics show for requests made with it: its
        configured name, else C{key-} and the first 8 hex digits of its
        digest, which identify it without revealing it.
    @ivar rpm: its own requests per minute, overriding C{rate_limit.rpm}.
    @ivar burst: its own burst, overriding C{rate_limit.burst}.
    @ivar tokens_per_minute: its own token budget, overriding
        C{rate_limit.tokens_per_minute}.
    @ivar max_concurrent_requests: its own bound on requests in flight,
        overriding C{rate_limit.max_concurrent_requests}.
    """

    id: str
    digest: bytes
    rpm: int | None = None
    burst: int | None = None
    tokens_per_minute: int | None = None
    max_concurrent_requests: int | None = None

    @classmethod
    def from_text(
        cls,
        text: str,
        name: str | None = None,
        rpm: int | None = None,
        burst: int | None = None,
        **limits: int | None,
    ) -> ApiKey:
        """
        The key a configured value (plain or stored form) stands for, with
        its own limits (C{tokens_per_minute}, C{max_concurrent_requests}).

        @raise ValueError: as L{parse_stored_key}.
        """
        digest = parse_stored_key(text)
        return cls(name or "key-" + digest.hex()[:8], digest, rpm, burst, **limits)

    def __repr__(self) -> str:
        return f"ApiKey(id={self.id!r})"


class KeyRing:
    """
    The keys the daemon accepts, found by the digest of what a client
    presents.
    """

    def __init__(self, keys: Iterable[ApiKey] = ()) -> None:
        self._keys: dict[bytes, ApiKey] = {}
        ids: set[str] = set()
        for key in keys:
            if key.digest in self._keys:
                raise ValueError(f"{key.id} and {self._keys[key.digest].id} are the same key")
            if key.id in ids:
                raise ValueError(f"two keys have the id {key.id}")
            self._keys[key.digest] = key
            ids.add(key.id)

    @classmethod
    def from_config(cls, config: Any) -> KeyRing:
        """
        The keys of C{auth.api_keys} (unnamed) and C{[[auth.keys]]} (named,
        with optional C{rpm}, C{burst}, C{tokens_per_minute} and
        C{max_concurrent_requests}).

        A key given twice is refused even if the two entries agree: when one
        is later removed to revoke it, the other would keep it working.

        @raise ConfigError: naming the setting, never the key.
        """
        in_file = f" in {config.source}" if config.source else ""
        places: list[tuple[str, ApiKey]] = []
        for i, text in enumerate(config["auth.api_keys"]):
            places.append((f"API_KEYS[{i}]", _parse(f"API_KEYS[{i}]", text)))
        named: dict[str, str] = {}
        for i, spec in enumerate(config.auth_keys):
            where = f"auth.keys[{i}]"
            name = spec.get("name")
            if name is not None:
                if not name:
                    raise ConfigError(f"{where}.name{in_file}: must not be empty")
                if name in named:
                    raise ConfigError(
                        f"{where}.name={name!r}{in_file}: already the name of {named[name]}"
                    )
                named[name] = where
            key = _parse(f"{where}.key{in_file}", spec["key"], name,
                         spec.get("rpm"), spec.get("burst"),
                         tokens_per_minute=spec.get("tokens_per_minute"),
                         max_concurrent_requests=spec.get("max_concurrent_requests"))
            places.append((where, key))
        seen: dict[bytes, str] = {}
        for where, key in places:
            if key.digest in seen:
                raise ConfigError(f"{where}: the same key as {seen[key.digest]}")
            seen[key.digest] = where
        _distinct_ids(places, named, in_file)
        return cls(key for _, key in places)

    def lookup(self, presented: str) -> ApiKey | None:
        """
        The key a client presented, or C{None}.

        This is constant-time where it matters. The dictionary is keyed by
        the SHA-256 of each key, and is probed with the SHA-256 of what the
        client sent: how long the probe takes depends only on that hash,
        which the client cannot steer towards a stored key's digest, so
        timing reveals nothing about the stored keys (the classic attack
        needs a comparison of secret bytes against bytes the attacker
        chooses, one byte at a time). The final L{hmac.compare_digest}
        confirms the match without an early exit all the same.
        """
        try:
            digest = _digest(presented)
        except ValueError:
            return None
        key = self._keys.get(digest)
        if key is None or not hmac.compare_digest(key.digest, digest):
            return None
        return key

    def __iter__(self) -> Iterator[ApiKey]:
        return iter(self._keys.values())

    def __len__(self) -> int:
        return len(self._keys)

    def __bool__(self) -> bool:
        return bool(self._keys)

    def __repr__(self) -> str:
        return f"KeyRing({list(self)!r})"


def _distinct_ids(places: list[tuple[str, ApiKey]], named: dict[str, str],
                  in_file: str) -> None:
    """
    Refuse two keys with one id: they would share a rate-limit bucket, a
    token budget and a name in the logs and metrics. Names are already
    distinct, so what remains is a name that is another key's derived id
    (C{key-} and 8 hex digits), or two unnamed keys whose digests begin
    alike (one chance in 4 billion a pair).

    @raise ConfigError: naming the setting to change.
    """
    with_names = set(named.values())
    derived: dict[str, str] = {}
    for where, key in places:
        if where in with_names:
            continue
        if key.id in derived:
            raise ConfigError(
                f"{where}: its id {key.id} is also the id of {derived[key.id]}; "
                "give one of them a name in [[auth.keys]]"
            )
        derived[key.id] = where
    for name, where in named.items():
        if name in derived:
            raise ConfigError(
                f"{where}.name={name!r}{in_file}: is the id of another key ({derived[name]})"
            )


def _parse(where: str, text: str, name: str | None = None,
           rpm: int | None = None, burst: int | None = None, **limits: int | None) -> ApiKey:
    try:
        return ApiKey.from_text(text, name, rpm, burst, **limits)
    except ValueError as e:
        raise ConfigError(f"{where}: {e}") from None
