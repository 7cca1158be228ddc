"""reasoning-gym tasks: deterministic questions, JSON-serialisable metadata the gym scorer accepts."""

from __future__ import annotations

import json

import pytest
import reasoning_gym

from ttclab.errors import ConfigError
from ttclab.tasks import GymTask, load_task
from ttclab.tasks.gym import gym_parameters, to_jsonable

DATASETS = ["gsm_symbolic", "basic_arithmetic", "chain_sum", "syllogism", "letter_counting"]


@pytest.mark.parametrize("name", DATASETS)
def test_same_config_same_questions_and_ids(name):
    a = GymTask(name, size=6, seed=7).questions()
    b = GymTask(name, size=6, seed=7).questions()
    assert len(a) == 6
    assert [q.id for q in a] == [f"{name}-7-{i}" for i in range(6)]
    assert a == b  # frozen dataclasses: id, question, gold, difficulty, metadata all equal
    other = GymTask(name, size=6, seed=8).questions()
    assert [q.question for q in other] != [q.question for q in a]


@pytest.mark.parametrize("name", DATASETS)
def test_metadata_is_json_and_rebuilds_the_scorer(name):
    qs = GymTask(name, size=5, seed=3).questions()
    for q in qs:
        meta = json.loads(json.dumps(q.metadata))  # must survive a JSON round trip (questions.parquet)
        assert meta["source"] == "reasoning_gym" and meta["dataset"] == name
        assert meta["config"]["seed"] == 3 and meta["config"]["size"] == 5
        assert meta["entry"]["question"] == q.question
        assert q.gold == str(meta["entry"]["answer"])
        ds = reasoning_gym.create_dataset(meta["dataset"], **meta["config"])
        # the gold answer scores 1.0 with reasoning-gym's own scorer on the round-tripped entry
        assert ds.score_answer(q.gold, meta["entry"]) == 1.0
        assert ds.score_answer("definitely wrong 98765", meta["entry"]) < 1.0


def test_parameters_reach_the_generator():
    qs = GymTask("chain_sum", size=8, seed=0, params={"min_terms": 2, "max_terms": 2, "min_digits": 1,
                                                      "max_digits": 1}).questions()
    for q in qs:
        expr = q.metadata["entry"]["metadata"]["expression"]
        assert len(expr.split()) == 3  # "a + b": two one-digit terms
        assert q.metadata["config"]["max_terms"] == 2
        assert eval(expr) == int(q.gold)  # noqa: S307 - a generated arithmetic expression


def test_numeric_difficulty_is_kept_and_ranges_are_not():
    assert GymTask("gsm_symbolic", size=2, seed=0).questions()[0].difficulty == 1.0
    assert GymTask("chain_sum", size=2, seed=0).questions()[0].difficulty is None


def test_unknown_dataset_names_close_matches():
    with pytest.raises(ConfigError, match=r"task.name: unknown reasoning-gym dataset 'sylogism'; did you mean syllogism"):
        GymTask("sylogism", size=2).questions()


def test_unknown_and_invalid_parameters():
    with pytest.raises(ConfigError, match=r"task.params.invalid_ratoi: .*did you mean invalid_ratio"):
        GymTask("syllogism", size=2, params={"invalid_ratoi": 0.1}).questions()
    with pytest.raises(ConfigError, match=r"task.params: invalid parameters for chain_sum: max_terms must be >= min_terms"):
        GymTask("chain_sum", size=2, params={"min_terms": 5, "max_terms": 2}).questions()
    with pytest.raises(ConfigError, match="task.params.seed"):
        GymTask("chain_sum", size=2, params={"seed": 1})


def test_describe_and_defaults():
    task = load_task({"source": "gym", "name": "syllogism", "size": 4, "seed": 2})
    assert task.name == "syllogism" and task.default_verifier() == "gym"
    d = task.describe()
    assert json.loads(json.dumps(d)) == {"source": "gym", "dataset": "syllogism", "params": {}, "seed": 2, "size": 4,
                                         "count": 4}
    params = gym_parameters("chain_sum")
    assert params["min_terms"] == 2 and "seed" not in params


def test_to_jsonable():
    import numpy as np

    out = to_jsonable({"t": (1, 2), "s": {3, 1}, "n": np.int64(4), "a": np.arange(2), 5: float("nan"), "o": object})
    assert out["t"] == [1, 2] and out["s"] == [1, 3] and out["n"] == 4 and out["a"] == [0, 1] and out["5"] == "nan"
    json.dumps(out, allow_nan=False)
