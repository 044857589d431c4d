"""Named semaphores from Python: the capacities that tasks' `limits=` take units of, and the locks
(`locks=`) tasks hold.

    import batchapi as batch
    batch.put_semaphore("db/warehouse-conn", capacity=4)

    @batch.task(limits={"db/warehouse-conn": 1})
    def load(shard: int) -> None: ...

    load.map(range(100))         # at most 4 tasks at once, across every job naming it
    batch.semaphores()           # capacity, units held, the jobs holding them, tasks waiting

See docs/workflows.md, "Locks and limits".
"""
from typing import Any, Dict, List, Optional, cast
from urllib.parse import quote, urlencode

from .client import Client
from .core import client as default_client


def _path(name: str, tenant: Optional[str] = None, mutex: bool = False) -> str:
    query = {k: v for k, v in (("tenant", tenant), ("mutex", "true" if mutex else None)) if v}
    return f"/v1/semaphores/{quote(name, safe='')}" + (f"?{urlencode(query)}" if query else "")


def put_semaphore(name: str, capacity: int, description: Optional[str] = None, tenant: Optional[str] = None,
                  client: Optional[Client] = None) -> Dict[str, Any]:
    """Creates the semaphore `name` of the token's tenant (or, for operators, `tenant`'s; `global/…`
    names are shared and only operators create them) or changes its capacity: 1 to 100000 units.
    Lowering it stops nothing running; new tasks wait until enough units come back. Returns its view."""
    if isinstance(capacity, bool) or not isinstance(capacity, int) or not 1 <= capacity <= 100_000:
        raise ValueError(f"capacity must be a whole number from 1 to 100000, not {capacity!r}")
    body: Dict[str, Any] = {"capacity": capacity}
    if description is not None:
        body["description"] = description
    if tenant is not None:
        body["tenant"] = tenant
    return cast(Dict[str, Any], (client or default_client()).request("PUT", _path(name), body)[1])


def get_semaphore(name: str, lock: bool = False, tenant: Optional[str] = None, client: Optional[Client] = None) -> Dict[str, Any]:
    """One semaphore (or, with `lock=True`, the lock of that name): capacity, units held, the jobs
    holding them and the tasks waiting. Raises NotFound when there is none."""
    return cast(Dict[str, Any], (client or default_client()).request("GET", _path(name, tenant, lock))[1])


def semaphores(client: Optional[Client] = None) -> List[Dict[str, Any]]:
    """The tenant's semaphores, the global ones, and the locks held or awaited."""
    return cast(List[Dict[str, Any]], (client or default_client()).request("GET", "/v1/semaphores")[1]["semaphores"])


def delete_semaphore(name: str, tenant: Optional[str] = None, client: Optional[Client] = None) -> None:
    """Deletes the semaphore: tasks holding units run on; waiting ones wait until it exists again."""
    (client or default_client()).request("DELETE", _path(name, tenant))
