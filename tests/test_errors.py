"""Every Cadenza exception pickles and comes back with the same message and fields (a runner may
move a step to another process and bring its error back)."""

from __future__ import annotations

import inspect
import pickle

import pytest

from cadenza import errors
from cadenza.engine.plan import Plan

CLASSES = [c for c in vars(errors).values()
           if inspect.isclass(c) and issubclass(c, errors.CadenzaError) and c.__module__ == errors.__name__]

# Constructor arguments for the classes that declare fields; the others take a message.
SAMPLES = {
    errors.PlanError: ([["step 's1': unknown tool 'x'", "step 's2': missing 'audio'"]],
                       {"last_plan": Plan(steps=[{"id": "s1", "tool": "x"}])}),
    errors.LLMError: (["the LLM returned invalid JSON"], {"raw": '{"steps": ['}),
}


def test_the_list_covers_the_module():
    assert errors.CadenzaError in CLASSES and errors.LLMError in CLASSES and errors.LLMConfigError in CLASSES
    assert len(CLASSES) >= 14


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_pickles_to_an_equal_error(cls):
    args, kwargs = SAMPLES.get(cls, ([f"{cls.__name__}: something named went wrong"], {}))
    err = cls(*args, **kwargs)
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is cls
    assert str(back) == str(err) and back.args == err.args
    assert vars(back) == vars(err)
    assert back.exit_code == err.exit_code
    assert errors.one_line(back) == errors.one_line(err)


def test_fields_are_constructor_arguments():
    err = errors.PlanError(["a", "b"], last_plan=None)
    assert str(err) == "a (and 1 more)" and err.problems == ["a", "b"] and err.last_plan is None
    assert errors.LLMError("no JSON").raw is None
    assert pickle.loads(pickle.dumps(errors.PlanError(["only"]))).problems == ["only"]


def test_a_chained_error_pickles_too():
    try:
        try:
            raise ValueError("inner")
        except ValueError as e:
            raise errors.ToolError("outer") from e
    except errors.ToolError as err:
        back = pickle.loads(pickle.dumps(err))
    assert str(back) == "outer"
