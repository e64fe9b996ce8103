"""Production profile plugin: only admins may set task-instance or DAG-run states.

The FAB permission model ties "clear/retry a task" and "set a task's state" to the same
permission (PUT on Task Instances), and "clear a run" and "set a run's state" to PUT on DAG Runs.
Operators must be able to clear and retry, yet only an admin may mark a task or run success or
failed (marking `approve` success never publishes anything, but it is still not an operator's
call). This ASGI middleware refuses, with 403, every PATCH of a task instance or DAG run (state
or note, single or bulk, dry run included) unless the caller is an admin (FAB role "Admin", or
the Simple auth manager's role "admin"). Clearing (POST …/clearTaskInstances, POST …/clear) is
untouched. Loaded through AIRFLOW__CORE__PLUGINS_FOLDER=deploy/plugins (deploy/stack.sh).
"""

from __future__ import annotations

import json
import logging
import re

from airflow.plugins_manager import AirflowPlugin

log = logging.getLogger("voucher.guard")
_STATE_CHANGE = re.compile(
    r"^/api/v2/dags/[^/]+/dagRuns/[^/]+(/taskInstances(/[^/]+(/-?\d+)?(/dryRun)?)?)?/?$")


def _token(scope) -> str | None:
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
    auth = headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    for part in headers.get("cookie", "").split(";"):
        name, _, value = part.strip().partition("=")
        if name == "_token":
            return value
    return None


def _is_admin(user) -> bool:
    roles = getattr(user, "roles", None) or []
    names = {getattr(r, "name", r) for r in roles}
    return "Admin" in names or getattr(user, "role", None) == "admin"


class StateChangesAdminOnly:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope.get("type") == "http" and scope.get("method") == "PATCH" and _STATE_CHANGE.match(scope.get("path", "")):
            from airflow.api_fastapi.app import get_auth_manager
            user = None
            token = _token(scope)
            if token:
                try:
                    user = await get_auth_manager().get_user_from_token(token)
                except Exception:   # invalid token: the API itself answers 401 below
                    user = None
            if user is not None and not _is_admin(user):
                log.warning("refused %s %s for %s: only admins set task or run states",
                            scope["method"], scope["path"], getattr(user, "get_name", lambda: "?")())
                body = json.dumps({"detail": "Only an admin may set task-instance or DAG-run states "
                                             "(voucher production profile)."}).encode()
                await send({"type": "http.response.start", "status": 403,
                            "headers": [(b"content-type", b"application/json"),
                                        (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


class VoucherGuardPlugin(AirflowPlugin):
    name = "voucher_guard"
    fastapi_root_middlewares = [{"middleware": StateChangesAdminOnly, "args": [], "kwargs": {},
                                 "name": "Only admins set task or run states"}]
