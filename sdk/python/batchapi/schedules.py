"""Schedules (cron jobs and cron workflows) from Python: one small function over `/v1/schedules`.

    from batchapi import Client
    from batchapi.schedules import schedules
    c = Client()
    schedules(c, "create", spec={"name": "nightly", "schedule": "0 2 * * *", "timeZone": "Europe/Berlin",
                                 "concurrencyPolicy": "Forbid", "job": {"command": ["./etl.sh"]}})
    schedules(c, "trigger", "nightly")   # one run now
    schedules(c)                         # list

See docs/workflows.md, "Schedules", for the fields.
"""
from typing import Any, Dict, Optional
from urllib.parse import quote

from .client import Client

_ACTIONS = ("list", "get", "create", "delete", "pause", "resume", "trigger")


def schedules(client: Client, action: str = "list", name: Optional[str] = None,
              spec: Optional[Dict[str, Any]] = None, tenant: Optional[str] = None) -> Any:
    """Runs one schedule action and returns the API's answer: `list` (a list of schedules), `get`,
    `create` (with `spec`, the body of POST /v1/schedules), `delete`, `pause`, `resume`, `trigger`
    (each with `name`). `tenant` names another tenant's schedule (operators only). Raises the
    SDK's typed errors (e.g. `invalid_argument` naming `schedule` for a bad cron)."""
    if action not in _ACTIONS:
        raise ValueError(f"action must be one of {', '.join(_ACTIONS)}, not {action!r}")
    query = f"?tenant={quote(tenant)}" if tenant else ""
    if action == "list":
        return client.request("GET", f"/v1/schedules{query}")[1]["schedules"]
    if action == "create":
        if spec is None:
            raise ValueError("create needs spec=: the schedule (name, schedule, job or workflow, ...)")
        return client.request("POST", "/v1/schedules", spec)[1]
    if not name:
        raise ValueError(f"{action} needs the schedule's name")
    path = f"/v1/schedules/{quote(name, safe='')}"
    if action == "get":
        return client.request("GET", path + query)[1]
    if action == "delete":
        return client.request("DELETE", path + query)[1]
    return client.request("POST", f"{path}/{action}{query}", {})[1]
