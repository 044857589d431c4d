"""Workflow templates from Python: a `batchapi.param` argument travels as a marker with its
placeholder `{{params.<name>}}` in the step's env (`BATCH_PARAM_<name>`), `register` declares every
parameter its steps name, and (against a cluster) a registered template runs with each run's
values, quotes and backslashes included."""
import json
import os
import secrets
from typing import Any

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


def test_a_param_argument_is_a_marker_and_its_placeholder_is_an_env_value() -> None:
    body = t.greet.job_body([batch.param("greeting")], {"name": batch.param("who")})
    env = body["env"]
    assert json.loads(env["BATCH_PY_ARGS"]) == {"args": [{"$batch_param": "greeting"}], "kwargs": {"name": {"$batch_param": "who"}}}
    assert (env["BATCH_PARAM_greeting"], env["BATCH_PARAM_who"]) == ("{{params.greeting}}", "{{params.who}}")


def test_the_runner_hands_over_each_value_as_given(tmp_path: Any, monkeypatch: Any) -> None:
    """The server fills `BATCH_PARAM_<name>` with a run's value as plain text: a value with quotes
    and backslashes, which would break the JSON of the arguments, reaches the function unchanged."""
    from batchapi import run
    body = t.greet.job_body([batch.param("greeting")], {"name": batch.param("who")})
    value = 'say "hi" \\ {{x}}'
    filled = {k: v.replace("{{params.greeting}}", value).replace("{{params.who}}", "ana") for k, v in body["env"].items()}
    out = tmp_path / "result.json"
    for k, v in {**filled, "BATCH_RESULT_PATH": str(out)}.items():
        monkeypatch.setenv(k, v)
    assert run.main() == 0
    assert json.loads(out.read_text()) == f"{value}, ana"


@pytest.mark.parametrize("name, env", [("date", "BATCH_PARAM_date"), ("run-date", "BATCH_PARAM_run_Hdate"),
                                       ("run_date", "BATCH_PARAM_run__date"), ("a_H", "BATCH_PARAM_a__H"), ("a-_-b", "BATCH_PARAM_a_H___Hb")])
def test_a_param_env_name_is_a_valid_env_name_one_to_one(name: str, env: str) -> None:
    import re
    from batchapi._steps import param_env_name, param_of_env_name
    assert param_env_name(name) == env and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", env)
    assert param_of_env_name(env) == name
    assert param_of_env_name("BATCH_PARAM_bad_x") is None and param_of_env_name("PATH") is None


def test_a_hyphenated_param_reaches_the_function(tmp_path: Any, monkeypatch: Any) -> None:
    from batchapi import run
    env = t.greet.job_body([batch.param("run-date")])["env"]
    assert env["BATCH_PARAM_run_Hdate"] == "{{params.run-date}}"
    out = tmp_path / "result.json"
    for k, v in {**env, "BATCH_PARAM_run_Hdate": "2026-12-01", "BATCH_RESULT_PATH": str(out)}.items():
        monkeypatch.setenv(k, v)
    assert run.main() == 0 and json.loads(out.read_text()) == "2026-12-01, world"


def test_a_param_marker_without_its_env_value_fails_naming_it() -> None:
    from batchapi._steps import decode_arguments
    with pytest.raises(KeyError, match="BATCH_PARAM_date"):
        decode_arguments([{"$batch_param": "date"}], {}, {})
    assert decode_arguments([{"$batch_literal": {"$batch_param": "date"}}], {}, {}) == [{"$batch_param": "date"}]


def test_template_request_declares_every_parameter_its_steps_name() -> None:
    wf = batch.workflow("greetings")
    wf.step(t.greet.options(name="hello"), batch.param("greeting"), name=batch.param("who"))
    wf.step(t.greet.options(name="dated"), f"{batch.param('day')}/x", name="z")  # inside a string: filled in the JSON
    body = template_request(wf, {"greeting": "hi", "region": {"default": "eu", "pattern": "[a-z]+"}}, description="d")
    assert placeholders(body["workflow"]) == ["greeting", "who", "day"]
    assert body["parameters"] == {
        "greeting": {"default": "hi"},  # a default string; a whole argument: any value
        "region": {"default": "eu", "pattern": "[a-z]+"},  # its own pattern kept
        "who": {},  # named by a step, not declared: required
        "day": {"pattern": JSON_SAFE_PATTERN},  # part of a string of the arguments' JSON
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
    quoted = batch.run_template(name, params={"who": 'a "b" \\ c'})  # any value: it travels in an env value
    assert quoted.wait(timeout=120)["phase"] == "Succeeded", quoted.view
    assert quoted.result(hello) == 'hi, a "b" \\ c'
    assert [x["name"] for x in batch.templates()].count(name) == 1
    batch.templates("delete", name)
