"""Workflow templates from Python: `batchapi.param` placeholders survive into the step's
arguments as the literal `{{params.<name>}}`, `register` declares every parameter its steps name,
and (against a cluster) a registered template runs with each run's values."""
import json
import os
import secrets

import pytest

import batchapi as batch
import sample_tasks as t
from batchapi.templates import JSON_SAFE_PATTERN, placeholders, template_request

LIVE = bool(os.environ.get("BATCH_API") and os.environ.get("BATCH_TOKEN"))


def test_param_is_the_placeholder_string() -> None:
    p = batch.param("date")
    assert p == "{{params.date}}" and isinstance(p, str) and p.name == "date"
    assert repr(p) == "param('date')"


@pytest.mark.parametrize("name", ["", "1day", "a.b", "a b", "x" * 64])
def test_param_refuses_a_name_the_api_would(name: str) -> None:
    with pytest.raises(batch.InvalidTask):
        batch.param(name)


def test_the_placeholder_survives_into_the_json_of_the_step_arguments() -> None:
    body = t.greet.job_body([batch.param("greeting")], {"name": batch.param("who")})
    raw = body["env"]["BATCH_PY_ARGS"]
    assert '"{{params.greeting}}"' in raw and '"{{params.who}}"' in raw
    # the server puts a value in place of the placeholder: the arguments stay JSON
    filled = raw.replace("{{params.greeting}}", "hello").replace("{{params.who}}", "ana")
    assert json.loads(filled) == {"args": ["hello"], "kwargs": {"name": "ana"}}


def test_template_request_declares_every_parameter_its_steps_name() -> None:
    wf = batch.workflow("greetings")
    wf.step(t.greet.options(name="hello"), batch.param("greeting"), name=batch.param("who"))
    body = template_request(wf, {"greeting": "hi", "region": {"default": "eu", "pattern": "[a-z]+"}}, description="d")
    assert placeholders(body["workflow"]) == ["greeting", "who"]
    assert body["parameters"] == {
        "greeting": {"default": "hi", "pattern": JSON_SAFE_PATTERN},  # a default string
        "region": {"default": "eu", "pattern": "[a-z]+"},  # its own pattern kept
        "who": {"pattern": JSON_SAFE_PATTERN},  # named by a step, not declared: required
    }
    assert body["description"] == "d" and body["workflow"]["name"] == "greetings"


def test_json_safe_pattern_refuses_quotes_and_backslashes() -> None:
    import re
    assert re.fullmatch(JSON_SAFE_PATTERN, "2026-12-01 ok")
    assert not re.fullmatch(JSON_SAFE_PATTERN, 'say "hi"') and not re.fullmatch(JSON_SAFE_PATTERN, "a\\b")


def test_run_template_refuses_a_value_that_is_not_a_string() -> None:
    with pytest.raises(batch.InvalidTask):
        batch.run_template("x", params={"n": 3})  # type: ignore[dict-item]


@pytest.mark.skipif(not LIVE, reason="no cluster: set BATCH_API and BATCH_TOKEN (the test suite starts a local cluster for these)")
def test_a_registered_workflow_runs_with_each_runs_values() -> None:
    name = f"py-greet-{secrets.token_hex(3)}"
    wf = batch.workflow("py-greet")
    hello = wf.step(t.greet.options(name="hello"), batch.param("greeting"), name=batch.param("who"))
    v = wf.register(name, parameters={"greeting": "hi", "who": None}, description="greets")
    assert (v["version"], sorted(v["parameters"])) == (1, ["greeting", "who"])
    assert wf.id is None  # registered, not submitted

    a = batch.run_template(name, params={"who": "ana"})
    b = batch.run_template(name, params={"who": "bo", "greeting": "bye"})
    assert a.wait(timeout=120)["phase"] == "Succeeded", a.view
    assert b.wait(timeout=120)["phase"] == "Succeeded", b.view
    assert (a.result(hello), b.result(hello)) == ("hi, ana", "bye, bo")
    assert a.view is not None and a.view["template"] == {"name": name, "version": 1, "params": {"greeting": "hi", "who": "ana"}}

    with pytest.raises(batch.Unprocessable) as missing:
        batch.run_template(name)
    assert missing.value.field == "params.who"
    with pytest.raises(batch.InvalidArgument) as quoted:
        batch.run_template(name, params={"who": 'a "b"'})
    assert quoted.value.field == "params.who"
    assert [x["name"] for x in batch.templates()].count(name) == 1
    batch.templates("delete", name)
