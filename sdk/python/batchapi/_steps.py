"""What a workflow step's results are, read the same way by `Workflow.result` and by a task
that takes the step as an input (`batchapi.run`)."""
from typing import Any, Dict, List

from .client import Client
from .errors import TaskFailed


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
    values: List[Any] = [r["value"] for r in sorted(c.results(job_id), key=lambda r: int(r["index"]))]
    if is_map:
        return values
    return values[0] if c.get_job(job_id)["tasks"] == 1 and values else values
