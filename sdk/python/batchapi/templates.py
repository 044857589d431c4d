"""Workflow templates from Python: a workflow defined once, registered (each change a new
version), and run many times with parameters (`/v1/workflow-templates`).

    import batchapi

    wf = batchapi.workflow("nightly")                     # no `with`: registered, not submitted
    raw = wf.step(extract.options(name="extract"), batchapi.param("date"))
    wf.step(load.options(name="load", inputs=[raw]), region=batchapi.param("region"))
    wf.register("nightly", parameters={"date": {"pattern": r"\\d{4}-\\d{2}-\\d{2}"}, "region": "eu"})

    run = batchapi.run_template("nightly", params={"date": "2026-12-01"})
    run.wait()

`batchapi.param("date")` is the string `{{params.date}}`. Given as a step's argument, it travels
as a marker, and the step's env var `BATCH_PARAM_date` holds the placeholder: the server puts each
run's value there and the node's runner hands it to the function, so a value may hold any
character but control characters (quotes and backslashes included). A placeholder inside a longer
string of the arguments (`f"{batchapi.param('date')}/x"`) is filled inside their JSON text, so
`register` gives such a parameter the pattern `[^"\\\\]*` (no `"` or `\\`) unless it declares its own.

See docs/workflows.md, "Templates and parameters".
"""
from __future__ import annotations

import json
import re
import secrets
from typing import Any, Dict, List, Mapping, Optional, TypedDict, Union
from urllib.parse import quote

from ._steps import Param
from .core import Workflow, client
from .errors import InvalidTask

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,62}$")
_PLACEHOLDER = re.compile(r"\{\{\s*params\.([^\s{}]*)\s*\}\}")
#: The pattern `register` gives a parameter without one whose placeholder is inside a string of a
#: step's arguments (their JSON text): no `"` or `\`, which would break that JSON.
JSON_SAFE_PATTERN = '[^"\\\\]*'


class ParameterSpec(TypedDict, total=False):
    """One declared parameter: `default` (none: every run must give a value), `description`, and
    `pattern` (a regular expression the whole value must match)."""
    default: str
    description: str
    pattern: str


#: A parameter as `register` takes it: None (required), a string (its default), or a full spec.
Parameter = Union[None, str, ParameterSpec]


def param(name: str) -> Param:
    """`batchapi.param("date")`: the placeholder of parameter `date` in a workflow to register."""
    return Param(name)


def placeholders(body: Any) -> List[str]:
    """The parameter names `{{params.<name>}}` in the strings of `body` (its JSON text), in order, once each."""
    return list(dict.fromkeys(_PLACEHOLDER.findall(json.dumps(body))))


def _in_arguments_json(workflow: Any) -> List[str]:
    """The parameters whose placeholders are inside the JSON text of a step's `BATCH_PY_ARGS`."""
    names: List[str] = []
    for step in (workflow.get("steps") or []) if isinstance(workflow, dict) else []:
        job = step.get("job") if isinstance(step, dict) else None
        args = ((job or {}).get("env") or {}).get("BATCH_PY_ARGS") if isinstance(job, dict) else None
        if isinstance(args, str):
            names.extend(n for n in _PLACEHOLDER.findall(args) if n not in names)
    return names


def template_request(wf: Workflow, parameters: Optional[Mapping[str, Parameter]] = None, description: Optional[str] = None) -> Dict[str, Any]:
    """The body `register` sends (`PUT /v1/workflow-templates/{name}`): the workflow's request as
    its `workflow`, and every parameter — those given, and those its steps name but `parameters`
    does not (required); one without a pattern whose placeholder is inside the JSON text of a
    step's arguments (`BATCH_PY_ARGS`) is given `JSON_SAFE_PATTERN`."""
    workflow = wf.request()
    declared: Dict[str, ParameterSpec] = {}
    for name, p in (parameters or {}).items():
        if not isinstance(name, str) or not _NAME.match(name):
            raise InvalidTask("invalid_option", f"a parameter name is a letter, then letters, digits, '_' and '-' (at most 63), not {name!r}", "parameters")
        spec: ParameterSpec = {} if p is None else {"default": p} if isinstance(p, str) else ParameterSpec(**p)
        declared[name] = spec
    for name in placeholders(workflow):
        declared.setdefault(name, {})
    for name in _in_arguments_json(workflow):
        if name in declared:
            declared[name].setdefault("pattern", JSON_SAFE_PATTERN)
    body: Dict[str, Any] = {"parameters": declared, "workflow": workflow}
    if description is not None:
        body["description"] = description
    return body


def register_workflow(wf: Workflow, name: str, parameters: Optional[Mapping[str, Parameter]] = None,
                      description: Optional[str] = None) -> Dict[str, Any]:
    """Registers `wf` as template `name` (a new version when it changed): see `Workflow.register`."""
    return _obj(client().request("PUT", f"/v1/workflow-templates/{quote(name, safe='')}", template_request(wf, parameters, description))[1])


def run_template(name: str, params: Optional[Mapping[str, str]] = None, version: Optional[int] = None,
                 idempotency_key: Optional[str] = None) -> Workflow:
    """Runs template `name` with `params` (strings; a parameter without a default must be given)
    at `version` (default: the latest). Returns the run, a `Workflow` (`wait()`, `result(step)`
    with the steps of the workflow that was registered). Raises `Unprocessable` (codes
    `missing_parameter`, `unknown_parameter`, naming `params.<name>`), `InvalidArgument` for a
    value that does not match its pattern, `NotFound` for an unknown template or version."""
    body: Dict[str, Any] = {}
    if params:
        bad = [k for k, v in params.items() if not isinstance(v, str)]
        if bad:
            raise InvalidTask("invalid_option", f"parameter values are strings; {bad[0]!r} is not", f"params.{bad[0]}")
        body["params"] = dict(params)
    if version is not None:
        body["version"] = version
    key = idempotency_key or secrets.token_hex(16)
    view = _obj(client().request("POST", f"/v1/workflow-templates/{quote(name, safe='')}/runs", body, {"idempotency-key": key})[1])
    wf = Workflow(str(view.get("name", name)))
    wf.id, wf.view = str(view["id"]), view
    return wf


def templates(action: str = "list", name: Optional[str] = None, version: Optional[int] = None) -> Any:
    """`list` (the templates at their latest versions), `get` (one, at `version` or the latest) or
    `delete` (every version; its runs stay)."""
    if action == "list":
        return _obj(client().request("GET", "/v1/workflow-templates")[1])["templates"]
    if action not in ("get", "delete") or not name:
        raise ValueError("action is list, or get or delete with the template's name")
    path = f"/v1/workflow-templates/{quote(name, safe='')}"
    if action == "get":
        return _obj(client().request("GET", path + (f"?version={int(version)}" if version is not None else ""))[1])
    return _obj(client().request("DELETE", path)[1])


def _obj(v: Any) -> Dict[str, Any]:
    if not isinstance(v, dict):
        raise TypeError(f"expected a JSON object from the API, got {type(v).__name__}")
    return v
