"""Users, API tokens and permissions of a server a team exposes (docs/server.md, "Security").

Kept in ONE JSON file outside the repository's history and the tracking branch: by default
``<git common dir>/gitexp/auth/users.json`` of the served repository (never pushed, never in a
clone), or the file given with ``--auth-file``. The file is written mode 0600, atomically
(a temporary file renamed over it), under a lock; a running server rereads it when it changes,
so ``gitexp users ...`` takes effect without a restart.

* Passwords: ``hashlib.scrypt`` (n=2**14, r=8, p=1, 16-byte random salt), compared in constant
  time. API tokens: 32 random bytes shown once; only their SHA-256 is stored (a token has the
  entropy a slow hash protects a password for).
* Permissions, MLflow's model: READ, EDIT, MANAGE or NO_PERMISSIONS per experiment (by id)
  and per registered model (by name) for a user; without an entry, the server's default
  permission (``--default-permission``, READ like MLflow's). Admins can do everything. The
  creator of an experiment or a model gets MANAGE on it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import json
import os
import secrets
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ..exceptions import GitexpError, InvalidParameterValue, ResourceAlreadyExists, ResourceDoesNotExist

PERMISSIONS = ("NO_PERMISSIONS", "READ", "EDIT", "MANAGE")  # in increasing power
RESOURCE_KINDS = ("experiment", "registered_model")
_SCRYPT = {"n": 2 ** 14, "r": 8, "p": 1}
TOKEN_PREFIX = "gxp_"


class PermissionDenied(GitexpError):
    error_code = "PERMISSION_DENIED"


class Unauthenticated(GitexpError):
    error_code = "UNAUTHENTICATED"


def rank(permission: str) -> int:
    return PERMISSIONS.index(permission)


def check_permission_name(permission: str) -> str:
    value = (permission or "").strip().upper()
    if value not in PERMISSIONS:
        raise InvalidParameterValue(f"Invalid permission {permission!r}: one of {', '.join(PERMISSIONS)}")
    return value


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **_SCRYPT)
    return f"scrypt${_SCRYPT['n']}${_SCRYPT['r']}${_SCRYPT['p']}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        kind, n, r, p, salt, digest = stored.split("$")
        if kind != "scrypt":
            return False
        got = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p),
                             dklen=len(digest) // 2)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got.hex(), digest)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _check_username(name: str) -> str:
    name = (name or "").strip()
    if not name or len(name) > 100 or any(c in name for c in ":<>\n\r\t") or name != name.strip():
        raise InvalidParameterValue(f"Invalid user name {name!r}: 1-100 characters, none of ':<>' or newlines")
    return name


def default_auth_file(common_dir: str) -> str:
    """Where a repository's server keeps its users: inside .git, never on a branch."""
    return os.path.join(common_dir, "gitexp", "auth", "users.json")


@dataclass(frozen=True)
class User:
    name: str
    admin: bool
    email: str

    @property
    def author(self) -> tuple[str, str]:
        """The git author of the changes this user makes through the server."""
        return self.name, self.email


class AuthStore:
    """The users file: read on change, written atomically under a lock."""

    def __init__(self, path: str) -> None:
        self.path = os.path.abspath(path)
        self._lock = threading.Lock()
        self._data: dict[str, Any] = {}
        self._stamp: tuple[int, int] | None = None

    def session_key(self) -> bytes:
        """The key that signs the UI's session cookies: 32 random bytes kept beside the users file
        (mode 0600), so a restarted server keeps its users signed in. Delete it to sign everyone out."""
        path = os.path.join(os.path.dirname(self.path), "session.key")
        try:
            with open(path, "rb") as fh:
                key = fh.read()
            if len(key) >= 32:
                return key
        except FileNotFoundError:
            pass
        os.makedirs(os.path.dirname(path), exist_ok=True)
        key = secrets.token_bytes(32)
        tmp = f"{path}.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(key)
        try:
            os.link(tmp, path)  # the first server to write it wins; the others read it
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp)
        with open(path, "rb") as fh:
            return fh.read()

    # -- the file -----------------------------------------------------------------------------
    @staticmethod
    def _empty() -> dict[str, Any]:
        return {"version": 1, "users": {}, "permissions": {kind: {} for kind in RESOURCE_KINDS}}

    def _load(self) -> dict[str, Any]:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            self._data, self._stamp = self._empty(), None
            return self._data
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp != self._stamp:
            with open(self.path, encoding="utf-8") as f:
                data = json.load(f)
            for kind in RESOURCE_KINDS:
                data.setdefault("permissions", {}).setdefault(kind, {})
            data.setdefault("users", {})
            self._data, self._stamp = data, stamp
        return self._data

    def read(self) -> dict[str, Any]:
        with self._lock:
            return self._load()

    @contextlib.contextmanager
    def _editing(self) -> Iterator[dict[str, Any]]:
        os.makedirs(os.path.dirname(self.path), mode=0o700, exist_ok=True)
        with self._lock, open(self.path + ".lock", "a") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            self._stamp = None
            data = json.loads(json.dumps(self._load()))
            yield data
            tmp = f"{self.path}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(data, f, indent=1, sort_keys=True)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
            self._stamp = None

    # -- users ---------------------------------------------------------------------------------
    def users(self) -> list[User]:
        return [self._user(name, u) for name, u in sorted(self.read()["users"].items())]

    @staticmethod
    def _user(name: str, u: dict[str, Any]) -> User:
        return User(name, bool(u.get("admin")), u.get("email") or f"{name}@gitexp-server")

    def get_user(self, name: str) -> User:
        u = self.read()["users"].get(name)
        if u is None:
            raise ResourceDoesNotExist(f"User with username={name} not found")
        return self._user(name, u)

    def has_users(self) -> bool:
        return bool(self.read()["users"])

    def add_user(self, name: str, password: str, admin: bool = False, email: str | None = None) -> User:
        name = _check_username(name)
        if not password:
            raise InvalidParameterValue("A password must not be empty")
        hashed = hash_password(password)
        with self._editing() as data:
            if name in data["users"]:
                raise ResourceAlreadyExists(f"User {name!r} already exists")
            data["users"][name] = {"password": hashed, "admin": admin, "email": email or None, "tokens": [],
                                   "created": int(time.time())}
        return self.get_user(name)

    def remove_user(self, name: str) -> None:
        with self._editing() as data:
            if data["users"].pop(name, None) is None:
                raise ResourceDoesNotExist(f"User with username={name} not found")
            for grants in data["permissions"].values():
                for per_user in grants.values():
                    per_user.pop(name, None)

    def set_password(self, name: str, password: str) -> None:
        if not password:
            raise InvalidParameterValue("A password must not be empty")
        hashed = hash_password(password)
        with self._editing() as data:
            if name not in data["users"]:
                raise ResourceDoesNotExist(f"User with username={name} not found")
            data["users"][name]["password"] = hashed

    def set_admin(self, name: str, admin: bool) -> None:
        with self._editing() as data:
            if name not in data["users"]:
                raise ResourceDoesNotExist(f"User with username={name} not found")
            data["users"][name]["admin"] = bool(admin)

    def new_token(self, name: str, label: str = "") -> str:
        """A new API token for `name`, returned once (only its hash is kept)."""
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        with self._editing() as data:
            if name not in data["users"]:
                raise ResourceDoesNotExist(f"User with username={name} not found")
            data["users"][name].setdefault("tokens", []).append(
                {"sha256": _token_hash(token), "label": label, "created": int(time.time())})
        return token

    def revoke_tokens(self, name: str) -> int:
        with self._editing() as data:
            if name not in data["users"]:
                raise ResourceDoesNotExist(f"User with username={name} not found")
            n = len(data["users"][name].get("tokens", []))
            data["users"][name]["tokens"] = []
        return n

    # -- authentication ------------------------------------------------------------------------
    def check_password(self, name: str, password: str) -> User | None:
        u = self.read()["users"].get(name)
        if u is None:
            verify_password(password, _DUMMY_HASH)  # the same time for unknown users
            return None
        return self._user(name, u) if verify_password(password, u.get("password", "")) else None

    def check_token(self, token: str) -> User | None:
        digest = _token_hash(token)
        for name, u in self.read()["users"].items():
            for t in u.get("tokens", []):
                if hmac.compare_digest(t.get("sha256", ""), digest):
                    return self._user(name, u)
        return None

    # -- permissions ----------------------------------------------------------------------------
    def explicit(self, kind: str, resource: str, name: str) -> str | None:
        return self.read()["permissions"][kind].get(resource, {}).get(name)  # type: ignore[no-any-return]

    def permission(self, user: User, kind: str, resource: str, default: str) -> str:
        if user.admin:
            return "MANAGE"
        return self.explicit(kind, resource, user.name) or default

    def grant(self, kind: str, resource: str, name: str, permission: str) -> None:
        permission = check_permission_name(permission)
        with self._editing() as data:
            if name not in data["users"]:
                raise ResourceDoesNotExist(f"User with username={name} not found")
            data["permissions"][kind].setdefault(resource, {})[name] = permission

    def revoke(self, kind: str, resource: str, name: str) -> None:
        with self._editing() as data:
            per_user = data["permissions"][kind].get(resource, {})
            if per_user.pop(name, None) is None:
                raise ResourceDoesNotExist(f"No {kind} permission for user {name!r} on {resource!r}")

    def grants(self, name: str) -> dict[str, dict[str, str]]:
        perms = self.read()["permissions"]
        return {kind: {r: p[name] for r, p in perms[kind].items() if name in p} for kind in RESOURCE_KINDS}


_DUMMY_HASH = hash_password(secrets.token_hex(8))


class FailedLogins:
    """Failed logins per client address: after `limit` failures within `window` seconds the
    address is refused (429) until the oldest failure leaves the window."""

    def __init__(self, limit: int = 10, window: float = 60.0) -> None:
        self.limit, self.window = limit, window
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, address: str, now: float) -> deque[float]:
        q = self._failures.setdefault(address, deque())
        while q and q[0] <= now - self.window:
            q.popleft()
        return q

    def blocked_for(self, address: str) -> float:
        """Seconds until `address` may try again (0: now)."""
        now = time.monotonic()
        with self._lock:
            q = self._recent(address, now)
            return max(0.0, q[0] + self.window - now) if len(q) >= self.limit else 0.0

    def failed(self, address: str) -> int:
        now = time.monotonic()
        with self._lock:
            q = self._recent(address, now)
            q.append(now)
            if len(self._failures) > 10000:  # forget addresses with nothing recent
                for key in [k for k, v in self._failures.items() if not v or v[-1] <= now - self.window]:
                    del self._failures[key]
            return len(q)
