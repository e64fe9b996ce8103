"""Generate the Airflow secrets and user passwords once, into git-ignored files.

    python deploy/make_secrets.py AIRFLOW_HOME
writes AIRFLOW_HOME/secrets/{fernet_key,jwt_secret,api_secret_key} and
AIRFLOW_HOME/passwords.json.generated (simple auth manager users) if they are missing.
"""

import json
import os
import secrets
import sys
from pathlib import Path

from cryptography.fernet import Fernet

USERS = ("officer", "operator", "admin")
ALPHABET = "abcdefghkmnpqrstuvwxyzABCDEFGHKMNPQRSTUVWXYZ23456789"


def main(home: Path) -> None:
    os.umask(0o077)
    (home / "secrets").mkdir(parents=True, exist_ok=True)
    makers = {"fernet_key": lambda: Fernet.generate_key().decode(),
              "jwt_secret": lambda: secrets.token_urlsafe(48),
              "api_secret_key": lambda: secrets.token_urlsafe(48)}
    for name, make in makers.items():
        path = home / "secrets" / name
        if not path.exists() or not path.read_text().strip():
            path.write_text(make() + "\n")
    passwords = home / "passwords.json.generated"
    users = json.loads(passwords.read_text() or "{}") if passwords.exists() else {}
    for user in USERS:
        users.setdefault(user, "".join(secrets.choice(ALPHABET) for _ in range(16)))
    passwords.write_text(json.dumps(users, indent=2) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
