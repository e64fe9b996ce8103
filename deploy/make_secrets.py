"""Generate the Airflow secrets and user passwords once, into git-ignored files.

    python deploy/make_secrets.py AIRFLOW_HOME
writes AIRFLOW_HOME/secrets/{fernet_key,jwt_secret,api_secret_key}, the Ed25519 key that signs
published manifests AIRFLOW_HOME/secrets/signing_key.pem (PKCS#8 PEM, mode 0600, never inside the
publish root; export it as VOUCHER_SIGNING_KEY) and AIRFLOW_HOME/passwords.json.generated (user
passwords), the PostgreSQL and Redis passwords of the production profile
(secrets/pg_password, secrets/redis_password) if they are missing; `--rotate-db-passwords`
replaces those two. Everything here is git-ignored; the folder is mode 0700.
"""

import json
import os
import secrets
import sys
from pathlib import Path

from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

USERS = ("officer", "approver", "operator", "admin", "viewer")
ROTATE: tuple[str, ...] = ()
ALPHABET = "abcdefghkmnpqrstuvwxyzABCDEFGHKMNPQRSTUVWXYZ23456789"


def main(home: Path) -> None:
    os.umask(0o077)
    (home / "secrets").mkdir(parents=True, exist_ok=True)
    makers = {"fernet_key": lambda: Fernet.generate_key().decode(),
              "jwt_secret": lambda: secrets.token_urlsafe(48),
              "api_secret_key": lambda: secrets.token_urlsafe(48),
              # the production profile's PostgreSQL role and Redis ACL user (deploy/stack.sh)
              "pg_password": lambda: secrets.token_urlsafe(32),
              "redis_password": lambda: secrets.token_urlsafe(32)}
    for name in ROTATE:   # `deploy/stack.sh rotate-passwords`: new values, applied by stack.sh
        (home / "secrets" / name).unlink(missing_ok=True)
    for name, make in makers.items():
        path = home / "secrets" / name
        if not path.exists() or not path.read_text().strip():
            path.write_text(make() + "\n")
    signing_key = home / "secrets" / "signing_key.pem"
    if not signing_key.exists() or not signing_key.read_bytes().strip():
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        signing_key.write_bytes(pem)
    for path in (home / "secrets").iterdir():
        path.chmod(0o600)
    passwords = home / "passwords.json.generated"
    users = json.loads(passwords.read_text() or "{}") if passwords.exists() else {}
    for user in USERS:
        users.setdefault(user, "".join(secrets.choice(ALPHABET) for _ in range(16)))
    passwords.write_text(json.dumps(users, indent=2) + "\n")


if __name__ == "__main__":
    if sys.argv[2:3] == ["--rotate-db-passwords"]:
        ROTATE = ("pg_password", "redis_password")
    main(Path(sys.argv[1]))
