"""HTTP basic auth for the exporter: a file of ``user:hash`` lines, checked in constant time.

Hash formats (one per line; ``#`` starts a comment):

- ``user:$2b$12$...`` bcrypt (``$2a$``/``$2b$``/``$2y$``), as the Prometheus exporter-toolkit's
  ``basic_auth_users`` uses. Checked with the ``bcrypt`` package when installed, else with the
  C library's ``crypt(3)`` (glibc/libxcrypt support bcrypt; Python 3.11 and 3.12 only).
- ``user:sha256:<64 hex digits>``: SHA-256 of the password. Only for long random passwords
  (a token): SHA-256 is fast, so a guessable password falls to an offline attack if the file
  leaks. Make one with ``printf %s "$TOKEN" | sha256sum``.

Every answer costs the same whether the user exists or not: an unknown user is checked against
a dummy hash of the same kind and cost. bcrypt reads at most 72 bytes of a password; a longer
password never matches (an answer of 401, as the exporter-toolkit gives), after the same work.

Secrets never reach a log: errors name the file and line, never the hash or the password. A
successful bcrypt check is cached (keyed by a SHA-256 of user, password and hash), as the
exporter-toolkit does, so that a scrape every few seconds does not cost a bcrypt round each.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sre_tools.exceptions import ValidationError

_BCRYPT = re.compile(r"^\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}$")
_SHA256 = re.compile(r"^sha256:([0-9a-fA-F]{64})$")
# Compared against when the user is unknown, so that unknown and known users take as long.
_DUMMY_SHA256 = "0" * 64
BCRYPT_MAX_PASSWORD_BYTES = 72


@dataclass(frozen=True)
class Credential:
    user: str
    scheme: str  # "bcrypt" | "sha256"
    secret: str = ""  # the bcrypt hash, or the hex SHA-256 digest

    def __repr__(self) -> str:  # never print the hash
        return f"Credential(user={self.user!r}, scheme={self.scheme!r})"


def _bcrypt_checker() -> Callable[[str, str], bool] | None:
    """A ``(password, hash) -> bool`` for bcrypt hashes, or None when none is available."""
    try:
        import bcrypt  # type: ignore[import-not-found,unused-ignore]

        def check_bcrypt(password: str, hashed: str) -> bool:
            try:
                return bool(bcrypt.checkpw(password.encode("utf-8"), hashed.encode("ascii")))
            except ValueError:  # bcrypt >= 4.1 refuses passwords over 72 bytes
                return False

        return check_bcrypt
    except ImportError:
        pass
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import crypt  # Python <= 3.12
    except ImportError:
        return None
    probe = "$2b$04$" + "a" * 53
    try:
        supported = (crypt.crypt("probe", probe) or "").startswith("$2b$")
    except (OSError, ValueError):
        supported = False
    if not supported:
        return None

    def check_crypt(password: str, hashed: str) -> bool:
        try:
            result = crypt.crypt(password, hashed) or ""
        except (OSError, ValueError):
            return False
        return hmac.compare_digest(result.encode(), hashed.encode())

    return check_crypt


class BasicAuth:
    def __init__(self, credentials: list[Credential]):
        if not credentials:
            raise ValidationError("no users defined")
        self._users = {cred.user: cred for cred in credentials}
        hashes = [c.secret for c in credentials if c.scheme == "bcrypt"]
        self._bcrypt = _bcrypt_checker() if hashes else None
        # An unknown user costs one bcrypt round at the cost of the first configured hash.
        # (all "." is a valid salt and digest: a malformed one would fail fast, and tell).
        self._dummy_bcrypt = f"{hashes[0][:7]}{'.' * 53}" if hashes else None
        self._cache: set[bytes] = set()
        self._lock = threading.Lock()

    @property
    def users(self) -> list[str]:
        return sorted(self._users)

    @classmethod
    def from_text(cls, text: str, source: str = "<basic-auth>") -> BasicAuth:
        creds: list[Credential] = []
        seen: set[str] = set()
        for number, raw in enumerate(text.splitlines(), start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            where = f"line {number}"
            user, sep, secret = line.partition(":")
            user = user.strip()
            secret = secret.strip()
            if not sep or not user or not secret:
                raise ValidationError("expected user:hash", source=source, field=where)
            if user in seen:
                raise ValidationError(f"user {user!r} defined twice", source=source, field=where)
            seen.add(user)
            if _BCRYPT.match(secret):
                creds.append(Credential(user, "bcrypt", secret))
                continue
            m = _SHA256.match(secret)
            if m:
                creds.append(Credential(user, "sha256", m.group(1).lower()))
                continue
            raise ValidationError(
                f"unsupported hash for user {user!r} (use a bcrypt $2b$ hash or sha256:<hex>)",
                source=source,
                field=where,
            )
        if not creds:
            raise ValidationError("no users defined", source=source)
        auth = cls(creds)
        if any(c.scheme == "bcrypt" for c in creds) and auth._bcrypt is None:
            raise ValidationError(
                "bcrypt hashes need the 'bcrypt' package (pip install bcrypt) or a crypt(3) "
                "with bcrypt support; or use sha256:<hex> lines",
                source=source,
            )
        return auth

    @classmethod
    def load(cls, path: Path) -> BasicAuth:
        from sre_tools.inputs import MAX_SPEC_BYTES, read_text_capped

        # Capped, never waiting on a FIFO: the one reader of input files (sre_tools/inputs.py).
        text, source = read_text_capped(str(path), MAX_SPEC_BYTES, what="password file")
        return cls.from_text(text, source)

    def verify(self, user: str, password: str) -> bool:
        """True when ``user`` exists and ``password`` matches; constant time in the password."""
        cred = self._users.get(user)
        too_long = len(password.encode("utf-8")) > BCRYPT_MAX_PASSWORD_BYTES
        if self._dummy_bcrypt is not None and (
            (cred is None) or (cred.scheme == "bcrypt" and too_long)
        ):
            assert self._bcrypt is not None  # checked when loading
            # The same work as a known user's check, and never a match; a password past
            # bcrypt's 72 bytes is cut so the check cannot fail early.
            self._bcrypt(
                password.encode("utf-8")[:BCRYPT_MAX_PASSWORD_BYTES].decode("utf-8", "ignore"),
                self._dummy_bcrypt,
            )
            return False
        if cred is None or cred.scheme == "sha256":
            digest = hashlib.sha256(password.encode("utf-8")).hexdigest()
            expected = cred.secret if cred is not None else _DUMMY_SHA256
            ok = hmac.compare_digest(digest, expected)
            return ok and cred is not None
        token = hashlib.sha256(
            b"\0".join(s.encode("utf-8") for s in (user, password, cred.secret))
        ).digest()
        with self._lock:
            if token in self._cache:
                return True
        assert self._bcrypt is not None  # checked when loading
        if not self._bcrypt(password, cred.secret):
            return False
        with self._lock:
            if len(self._cache) > 1024:
                self._cache.clear()
            self._cache.add(token)
        return True
