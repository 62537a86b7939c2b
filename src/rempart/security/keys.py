"""Keys: one master key, and from it separate keys per purpose (DESIGN §4.5).

- field encryption: AES-256-GCM, one key per *version* (``field/v1``, ``field/v2`` …) so that
  keys rotate while serving; a ciphertext is ``version (2 bytes) ‖ nonce (12) ‖ ciphertext+tag``
  and its associated data binds table, column, row id and key version, so a ciphertext copied to
  another row or column does not decrypt;
- blind indexes: HMAC-SHA256 with their own key, truncated to 128 bits, each with a purpose
  prefix (``card``, ``nir``, ``iban`` …) so that equal values in two roles do not collide;
- token and secret hashing: HMAC-SHA256 with a third key (API secrets and tokens are random,
  high-entropy values: a keyed hash is the right tool, a password hash is not);
- audit signing: an Ed25519 key derived from the master key.

All are derived with HKDF-SHA256 from the master key, which comes from ``REMPART_MASTER_KEY``
(base64url, 32 bytes) or a key file (mode 0600). In ``dev`` and ``test`` a key file is generated
in the data dir on first use.

    >>> ring = KeyRing(bytes(32))
    >>> blob = ring.encrypt("example", "secret", "6f1c…", "185037599900118")
    >>> ring.decrypt("example", "secret", "6f1c…", blob)
    '185037599900118'
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import stat
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from rempart.config import ConfigError, Settings

_NONCE_BYTES = 12
_VERSION_BYTES = 2
BLIND_INDEX_BYTES = 16


class DecryptionError(RuntimeError):
    """A ciphertext did not authenticate: wrong row, column, key or a tampered value."""


def _derive(master: bytes, info: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info.encode()).derive(master)


class KeyRing:
    def __init__(self, master: bytes, *, current_version: int = 1) -> None:
        if len(master) != 32:
            raise ConfigError("the master key must be 32 bytes (base64url-encoded in the variable)")
        self._master = master
        self.current_version = current_version
        self._blind_key = _derive(master, "rempart/blind-index/v1")
        self._token_key = _derive(master, "rempart/token-hash/v1")
        self._audit_seed = _derive(master, "rempart/audit-signing/v1")
        self._aeads: dict[int, AESGCM] = {}

    # -- field encryption ------------------------------------------------------------------

    def _aead(self, version: int) -> AESGCM:
        aead = self._aeads.get(version)
        if aead is None:
            aead = self._aeads[version] = AESGCM(_derive(self._master, f"rempart/field/v{version}"))
        return aead

    def encrypt(
        self, table: str, column: str, row_id: object, plaintext: str, *, version: int | None = None
    ) -> bytes:
        v = version or self.current_version
        nonce = os.urandom(_NONCE_BYTES)
        aad = f"{table}|{column}|{row_id}|{v}".encode()
        return (
            v.to_bytes(_VERSION_BYTES, "big")
            + nonce
            + self._aead(v).encrypt(nonce, plaintext.encode(), aad)
        )

    def encrypt_fields(
        self, table: str, row_id: object, fields: tuple[tuple[str, str], ...]
    ) -> list[bytes]:
        """``encrypt`` of several columns of one row with the current key (bulk imports): the
        same ciphertext format and associated data, with the per-row parts computed once."""
        v = self.current_version
        aead, prefix, tail = self._aead(v), v.to_bytes(_VERSION_BYTES, "big"), f"|{row_id}|{v}"
        nonces = os.urandom(_NONCE_BYTES * len(fields))
        out = []
        for i, (column, plaintext) in enumerate(fields):
            nonce = nonces[i * _NONCE_BYTES : (i + 1) * _NONCE_BYTES]
            aad = f"{table}|{column}{tail}".encode()
            out.append(prefix + nonce + aead.encrypt(nonce, plaintext.encode(), aad))
        return out

    def decrypt(self, table: str, column: str, row_id: object, blob: bytes) -> str:
        v = int.from_bytes(blob[:_VERSION_BYTES], "big")
        nonce = blob[_VERSION_BYTES : _VERSION_BYTES + _NONCE_BYTES]
        aad = f"{table}|{column}|{row_id}|{v}".encode()
        try:
            return self._aead(v).decrypt(nonce, blob[_VERSION_BYTES + _NONCE_BYTES :], aad).decode()
        except InvalidTag:
            raise DecryptionError(f"{table}.{column} of row {row_id} does not decrypt") from None

    # -- keyed hashes ----------------------------------------------------------------------

    def blind_index(self, purpose: str, value: str) -> bytes:
        return hmac.digest(self._blind_key, f"{purpose}\x00{value}".encode(), "sha256")[
            :BLIND_INDEX_BYTES
        ]

    def token_hash(self, token: str) -> bytes:
        return hmac.new(self._token_key, token.encode(), hashlib.sha256).digest()

    def audit_signing_key(self) -> Ed25519PrivateKey:
        return Ed25519PrivateKey.from_private_bytes(self._audit_seed)


def load_master_key(settings: Settings) -> bytes:
    """From the environment, or the key file; in dev/test, create the key file if missing."""
    if settings.master_key is not None:
        return _decode(settings.master_key.get_secret_value(), "REMPART_MASTER_KEY")
    path = settings.master_key_file or settings.data_dir / "keys" / "master.key"
    if not path.exists():
        if settings.env == "prod":
            raise ConfigError(f"REMPART_MASTER_KEY_FILE: {path} does not exist")
        _create_key_file(path)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise ConfigError(
            f"REMPART_MASTER_KEY_FILE: {path} must be readable by its owner only (0600)"
        )
    return _decode(path.read_text().strip(), "REMPART_MASTER_KEY_FILE")


def _create_key_file(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(base64.urlsafe_b64encode(os.urandom(32)).decode() + "\n")


def _decode(text: str, variable: str) -> bytes:
    try:
        key = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except ValueError:
        raise ConfigError(f"{variable}: not base64url") from None
    if len(key) != 32:
        raise ConfigError(f"{variable}: the key must decode to 32 bytes")
    return key
