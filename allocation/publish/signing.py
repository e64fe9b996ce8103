"""Ed25519 signatures of published manifests: who may publish is whoever holds the private key.

The private key is a PEM (PKCS#8) file kept outside the publish root, readable by its owner only
(``deploy/make_secrets.py`` generates it next to the other secrets; ``voucher keygen PATH`` makes
one by hand). Publishers find it through ``--signing-key`` or the environment variable
``VOUCHER_SIGNING_KEY``. The public key is published as ``PUBLISH_ROOT/<round>/signing_key.pub``
(PEM SubjectPublicKeyInfo); every version's ``manifest.sig`` is the raw 64-byte Ed25519 signature
of the exact bytes of its ``manifest.json``, so anyone can check a version with
``voucher verify`` or with OpenSSL alone::

    openssl pkeyutl -verify -pubin -inkey signing_key.pub -rawin -in v1/manifest.json -sigfile v1/manifest.sig
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from allocation.errors import RoundError

KEY_ENV = "VOUCHER_SIGNING_KEY"


def generate_key(path: Path) -> Path:
    """A new private key at path (mode 0600; refuses to overwrite an existing file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    return path


def key_path(path: Path | str | None = None) -> Path:
    """The private key file: the given path, else $VOUCHER_SIGNING_KEY; RoundError if neither."""
    chosen = path or os.environ.get(KEY_ENV)
    if not chosen:
        raise RoundError(f"no signing key: give --signing-key FILE or set {KEY_ENV} (generate one with "
                         f"`voucher keygen FILE`, kept outside the publish root). Nothing was published.")
    return Path(chosen).expanduser().resolve()


def load_private_key(path: Path | str | None = None, publish_root: Path | None = None) -> Ed25519PrivateKey:
    """The publisher's private key; refuses a key stored inside the publish root or readable by others."""
    path = key_path(path)
    if not path.is_file():
        raise RoundError(f"signing key {path} not found")
    if publish_root is not None and path.is_relative_to(Path(publish_root).resolve()):
        raise RoundError(f"signing key {path} is inside the publish root {publish_root}: anyone who can "
                         f"read the published files could sign. Keep it outside.")
    if path.stat().st_mode & 0o077:
        raise RoundError(f"signing key {path} is readable by others (chmod 600 it)")
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise RoundError(f"signing key {path} is not an Ed25519 private key")
    return key


def public_pem(key: Ed25519PrivateKey | Ed25519PublicKey) -> bytes:
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def key_id(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    """sha256 of the raw public key, hex: what to compare with the programme's announced key."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def load_public_key(path: Path) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(Path(path).read_bytes())
    except (OSError, ValueError) as exc:
        raise RoundError(f"public key {path}: cannot be read ({exc})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise RoundError(f"public key {path} is not an Ed25519 public key")
    return key


def sign(key: Ed25519PrivateKey, data: bytes) -> bytes:
    return key.sign(data)


def is_valid(public: Ed25519PublicKey, data: bytes, signature: bytes) -> bool:
    try:
        public.verify(signature, data)
    except InvalidSignature:
        return False
    return True
