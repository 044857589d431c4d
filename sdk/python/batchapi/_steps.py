"""What a workflow step's results are, read the same way by `Workflow.result` and by a task
that takes a step's output as an argument (`batchapi.run`), and how such arguments travel.

A step's output given as an argument (`wf.step(train, prep.output)`) travels in `BATCH_PY_ARGS`
as the marker `{"$batch_input": "prep"}`; the node's runner puts the value in its place. A dict
of the user's own with a key starting `$batch_` is escaped as `{"$batch_literal": {...}}`, so no
data is ever taken for a marker.

A template parameter given as an argument (`wf.step(extract, batchapi.param("date"))`) travels
as the marker `{"$batch_param": "date"}`, and the step's env carries `BATCH_PARAM_date` (see
`param_env_name`) holding
the placeholder `{{params.date}}`: the server puts each run's value in a plain env value, never
inside the JSON of the arguments, so any value (quotes and backslashes included) arrives as given.
"""
import re
from typing import Any, Callable, Dict, List, Mapping, Optional
from urllib.parse import quote

from .client import Client, _obj
from .errors import InvalidTask, TaskFailed

#: The key of the marker of a step's output among a step's arguments.
INPUT_MARKER = "$batch_input"
#: The key wrapping a dict of the user's that has a key starting with `$batch_` (escaped, so it is never read as a marker).
LITERAL_MARKER = "$batch_literal"
#: The key of the marker of a template parameter among a step's arguments.
PARAM_MARKER = "$batch_param"
#: The env var prefix of a parameter's value on the node: `BATCH_PARAM_<name>`.
PARAM_ENV_PREFIX = "BATCH_PARAM_"
_RESERVED_PREFIX = "$batch_"
_PARAM_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,62}$")


class Param(str):
    """A placeholder for a template parameter: the string `{{params.<name>}}`. Pass it where a
    step takes a string; each run of the registered template puts its value there."""

    name: str

    def __new__(cls, name: str) -> "Param":
        if not isinstance(name, str) or not _PARAM_NAME.match(name):
            raise InvalidTask("invalid_option", f"a parameter name is a letter, then letters, digits, '_' and '-' (at most 63), not {name!r}", "param")
        p = super().__new__(cls, "{{params." + name + "}}")
        p.name = name
        return p

    def __repr__(self) -> str:
        return f"param({self.name!r})"


def encode_arguments(value: Any, promise: Callable[[Any], Any], params: Optional[List[str]] = None) -> Any:
    """`value` as JSON-ready data: what `promise(x)` turns into a step name (not None) becomes its
    marker, a `Param` its parameter's marker (its name appended to `params`, once); a dict with a
    `$batch_`-prefixed key is escaped. Lists, tuples and dicts at any depth."""
    if isinstance(value, Param):
        if params is not None and value.name not in params:
            params.append(value.name)
        return {PARAM_MARKER: value.name}
    name = promise(value)
    if name is not None:
        return {INPUT_MARKER: name}
    if isinstance(value, (list, tuple)):
        return [encode_arguments(v, promise, params) for v in value]
    if isinstance(value, dict):
        out = {k: encode_arguments(v, promise, params) for k, v in value.items()}
        return {LITERAL_MARKER: out} if any(isinstance(k, str) and k.startswith(_RESERVED_PREFIX) for k in out) else out
    return value


def param_env_name(name: str) -> str:
    """The env var of parameter `name`: `BATCH_PARAM_` and the name with `_` written `__` and `-`
    written `_H` (env names hold no `-`; the mapping is one to one, see `param_of_env_name`)."""
    return PARAM_ENV_PREFIX + "".join("__" if c == "_" else "_H" if c == "-" else c for c in name)


def param_of_env_name(env_name: str) -> Optional[str]:
    """The parameter whose env var is `env_name` (the inverse of `param_env_name`); None for another name."""
    if not env_name.startswith(PARAM_ENV_PREFIX):
        return None
    out, rest, i = [], env_name[len(PARAM_ENV_PREFIX):], 0
    while i < len(rest):
        if rest[i] != "_":
            out.append(rest[i])
            i += 1
        elif rest[i + 1:i + 2] in ("_", "H"):
            out.append("_" if rest[i + 1] == "_" else "-")
            i += 2
        else:
            return None
    return "".join(out)


def param_env(names: List[str]) -> Dict[str, str]:
    """The env of a step whose arguments hold the parameters `names`: each one's env var
    (`param_env_name`) set to its placeholder, which the server fills with each run's value."""
    return {param_env_name(n): str(Param(n)) for n in names}


def decode_arguments(value: Any, inputs: Mapping[str, Any], params: Optional[Mapping[str, str]] = None) -> Any:
    """The inverse of `encode_arguments`: step markers replaced by `inputs[name]`, parameter
    markers by `params[name]` (the values of `BATCH_PARAM_<name>`), escaped dicts unwrapped."""
    if isinstance(value, list):
        return [decode_arguments(v, inputs, params) for v in value]
    if isinstance(value, dict):
        if len(value) == 1 and INPUT_MARKER in value:
            name = value[INPUT_MARKER]
            if name not in inputs:
                raise KeyError(f"this step's arguments name the output of step {name!r}, which is not among its inputs {sorted(inputs)}")
            return inputs[name]
        if len(value) == 1 and PARAM_MARKER in value:
            pname = value[PARAM_MARKER]
            if params is None or pname not in params:
                raise KeyError(f"this step's arguments name template parameter {pname!r}, but its environment has no {param_env_name(str(pname))}")
            return params[pname]
        if len(value) == 1 and LITERAL_MARKER in value and isinstance(value[LITERAL_MARKER], dict):
            return {k: decode_arguments(v, inputs, params) for k, v in value[LITERAL_MARKER].items()}
        return {k: decode_arguments(v, inputs, params) for k, v in value.items()}
    return value


def _values(c: Client, job_id: str) -> List[Any]:
    """The tasks' values of a job by index; one kept in the blob store (over 64 KiB) is read on its own."""
    out: List[Any] = []
    for r in sorted(c.results(job_id), key=lambda r: int(r["index"])):
        if "value" not in r and r.get("ref"):
            out.append(c.request("GET", f"/v1/jobs/{quote(job_id)}/results/{int(r['index'])}")[1])
        else:
            out.append(r.get("value"))
    return out


def _value_of(c: Client, job_id: str, is_map: bool) -> Any:
    values = _values(c, job_id)
    if is_map:
        return values
    return values[0] if _obj(c.get_job(job_id))["tasks"] == 1 and values else values


def step_results(c: Client, wf_view: Dict[str, Any], name: str, is_map: bool) -> Any:
    """A map step's results as a list in item order — a list of one for one item, `[]` for a
    fan-out over nothing (the step succeeded without a job) — or another step's value (the list
    of its tasks' values when it has several tasks)."""
    step = next((s for s in wf_view["steps"] if s["name"] == name), None)
    if step is None:
        raise KeyError(f"workflow {wf_view.get('id')} has no step {name!r}")
    job_id = step.get("jobId")
    if step.get("phase") == "Succeeded" and not job_id:
        return [] if is_map else None
    if step.get("phase") != "Succeeded" or not job_id:
        raise TaskFailed(job_id or "-", None, str(step.get("phase")), message=f"step {name} ended {step.get('phase')}")
    return _value_of(c, job_id, is_map)


def input_value(c: Client, spec: Mapping[str, Any]) -> Any:
    """The value of one entry of a step job's `BATCH_INPUTS` (`{step, jobId, map, phase}`, set by
    the controller): as `step_results` reads it, from the job the entry names."""
    name, job_id, phase, is_map = spec["step"], spec.get("jobId"), spec.get("phase"), bool(spec.get("map"))
    if phase != "Succeeded":
        raise TaskFailed(job_id or "-", None, str(phase), message=f"input step {name} ended {phase}: it has no output")
    if not job_id:
        return [] if is_map else None
    return _value_of(c, str(job_id), is_map)
