"""Prompt templates: chat messages and few-shot completion strings."""

from __future__ import annotations

import json

import pytest

from ttclab.errors import ConfigError
from ttclab.tasks import CHAT_TEMPLATES, FEWSHOT_TEMPLATES, GymTask, Question, build_prompt_template, builtin_template
from ttclab.tasks.prompts import fill

GYM = {"source": "gym", "name": "chain_sum", "size": 6, "seed": 0}


def _qs(n: int) -> list[Question]:
    return [Question(id=f"q{i}", question=f"What is {i} + {i}?", gold=str(2 * i),
                     metadata={"solution": f"{i} + {i} = <<{i}+{i}={2 * i}>>{2 * i}"}) for i in range(n)]


def test_chat_default_is_system_plus_user():
    q = GymTask("chain_sum", size=1, seed=0).questions()[0]
    prompt = build_prompt_template({"style": "chat"}, GYM).render(q)
    assert isinstance(prompt, tuple)
    assert [m["role"] for m in prompt] == ["system", "user"]
    assert "Answer:" in prompt[0]["content"] and prompt[1]["content"] == q.question
    assert json.dumps(list(prompt))  # stored as JSON


def test_auto_style_follows_the_model():
    q = GymTask("chain_sum", size=1, seed=0).questions()[0]
    assert isinstance(build_prompt_template(None, GYM, chat=True).render(q), tuple)
    text = build_prompt_template(None, GYM, chat=False).render(q)
    assert isinstance(text, str) and text.count("Question: ") == 4 and text.endswith(f"Question: {q.question}\nAnswer:")


def test_fewshot_gym_examples_come_from_another_seed():
    task = GymTask("chain_sum", size=6, seed=0)
    tpl = build_prompt_template({"style": "fewshot", "shots": 2}, GYM)
    assert tpl.style == "fewshot" and tpl.stop == ("\nQuestion:", "\n\n")
    test_questions = {q.question for q in task.questions()}
    shots = tpl.shots_for(task.questions()[0])
    assert len(shots) == 2 and not test_questions & {s.question for s in shots}
    prompts = [tpl.render(q) for q in task.questions()]
    prefix = "".join(f"Question: {s.question}\nAnswer: {s.gold}\n\n" for s in shots[:2])
    assert all(p.startswith(prefix) for p in prompts)  # the same examples for every question: a cacheable prefix
    assert prompts[3].endswith(f"Question: {task.questions()[3].question}\nAnswer:")
    again = build_prompt_template({"style": "fewshot", "shots": 2}, GYM)
    assert [again.render(q) for q in task.questions()] == prompts  # deterministic
    other = build_prompt_template({"style": "fewshot", "shots": 2, "seed": 1}, GYM)
    assert [other.render(q) for q in task.questions()] != prompts


def test_examples_never_include_the_question_itself():
    qs = _qs(4)
    tpl = builtin_template("qa", shots=3, examples=qs)
    for q in qs:
        text = tpl.render(q)
        assert text.count(q.question) == 1 and text.endswith(f"Question: {q.question}\nAnswer:")
    with pytest.raises(ConfigError, match="prompt.shots: 5 examples asked for but only 4 available"):
        builtin_template("qa", shots=5, examples=qs).render(qs[0])


def test_chat_with_shots_and_solutions():
    qs = _qs(3)
    msgs = builtin_template("cot", shots=1, examples=qs[1:2]).render(qs[0])
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user"]
    assert msgs[2]["content"] == "1 + 1 = 2\nAnswer: 2"  # GSM8K calculator marks removed
    boxed = builtin_template("boxed", shots=1, examples=qs[2:]).render(qs[0])
    assert boxed[0]["content"].endswith(r"within \boxed{}.")
    assert boxed[2]["content"].endswith(r"The final answer is $\boxed{4}$.")


def test_user_strings_keep_other_braces():
    tpl = build_prompt_template({"style": "chat", "system": "", "user": r"Solve {question} and use \boxed{} {x}"}, GYM)
    q = Question(id="a", question="{answer} 1+1", gold="2")
    assert tpl.render(q) == ({"role": "user", "content": r"Solve {answer} 1+1 and use \boxed{} {x}"},)
    few = build_prompt_template(
        {
            "style": "fewshot",
            "shots": 1,
            "prefix": "Solve.",
            "query": "Q: {question}\nA:",
            "example": "Q: {question}\nA: {answer}",
            "separator": "\n---\n",
            "stop": ["---"],
        },
        GYM,
    )
    text = few.render(GymTask("chain_sum", size=1, seed=0).questions()[0])
    assert text.startswith("Solve.\n---\nQ: ") and text.count("\n---\n") == 2 and few.stop == ("---",)


def test_template_errors():
    with pytest.raises(ConfigError, match=r"prompt.template: unknown template 'cott'; did you mean cot"):
        build_prompt_template({"template": "cott"}, GYM)
    with pytest.raises(
        ConfigError, match=r"prompt.user: .*unknown placeholder \{questoin\}; did you mean \{question\}"
    ):
        build_prompt_template({"style": "chat", "user": "Q: {questoin}"}, GYM)
    with pytest.raises(ConfigError, match=r"prompt.query: .*must contain \{question\}"):
        build_prompt_template({"style": "fewshot", "query": "Q:"}, GYM)
    with pytest.raises(ConfigError, match=r"prompt.example: not used by chat templates"):
        build_prompt_template({"style": "chat", "example": "{question}"}, GYM)
    with pytest.raises(ConfigError, match=r"prompt.examples: few-shot prompting needs examples"):
        build_prompt_template({"style": "fewshot"}, None)


def test_builtin_templates_are_data():
    assert set(CHAT_TEMPLATES) == {"answer", "direct", "cot", "boxed", "choice", "code"}
    assert set(FEWSHOT_TEMPLATES) == {"qa", "qa_cot", "code_complete"}
    q = Question(id="x", question="Q?", gold="1")
    for name in CHAT_TEMPLATES:
        assert builtin_template(name).render(q)[-1] == {"role": "user", "content": "Q?"}
    for name in ("qa", "qa_cot"):
        assert builtin_template(name, shots=0).render(q) == "Question: Q?\nAnswer:"
    assert builtin_template("code_complete", shots=0).render(q) == "Q?"  # the prompt is continued as is
    assert fill("{id}/{question}/{answer}", q) == "x/Q?/"


def test_file_task_examples_exclude_the_evaluated_questions(shared_data):
    cfg = {"source": "file", "path": str(shared_data / "gsm8k/test.jsonl"), "preset": "gsm8k", "limit": 10}
    from ttclab.tasks import load_task

    qs = load_task(cfg).questions()
    tpl = build_prompt_template({"style": "fewshot", "shots": 3}, cfg)
    shots = tpl.shots_for(qs[0])
    assert len(shots) == 3 and not {s.id for s in shots} & {q.id for q in qs}
    assert tpl.describe()["examples"]["excluding"]
    gpqa_like = {"source": "file", "path": str(shared_data / "aime24/test.jsonl"), "preset": "gpqa"}
    assert build_prompt_template(None, gpqa_like, chat=True).name == "choice"
