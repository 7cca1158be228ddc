"""Prompt templates: chat messages or a few-shot completion string for each question.

Templates are data: strings with the placeholders ``{question}``, ``{answer}`` (the gold answer, in
solved examples), ``{solution}`` (a worked solution when the data has one, else the answer) and
``{id}``. Only these placeholders are replaced; every other brace is kept as is, so
``"put your final answer within \\boxed{}"`` needs no escaping.

- Chat templates (``CHAT_TEMPLATES``): a system message and a user message; ``k`` solved examples
  become earlier user / assistant turns.
- Few-shot completion templates (``FEWSHOT_TEMPLATES``): an optional prefix, ``k`` solved examples
  and the query (``"Question: ...\\nAnswer:"``), joined by a separator; ``stop`` strings end the
  completion before the model invents the next question.

The examples are the same for every question (so servers can cache the prompt prefix), except that
an example equal to the question itself is skipped.
"""

from __future__ import annotations

import difflib
import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

from ttclab.errors import ConfigError
from ttclab.tasks.base import Question

ChatMessage = dict[str, str]
Prompt = str | tuple[ChatMessage, ...]
Style = Literal["chat", "fewshot"]

PLACEHOLDERS = ("question", "answer", "solution", "id")
_PLACEHOLDER = re.compile(r"\{(question|answer|solution|id)\}")
_WORD_IN_BRACES = re.compile(r"(?<!\\)(?<![A-Za-z])\{([A-Za-z_]+)\}")

#: Built-in chat templates: system message, user message, assistant message of a solved example.
CHAT_TEMPLATES: dict[str, dict[str, str | None]] = {
    "answer": {
        "system": "Solve the problem. Give the final answer on the last line as 'Answer: <answer>'.",
        "user": "{question}",
        "assistant": "Answer: {answer}",
    },
    "direct": {
        "system": "Reply with the final answer only, as 'Answer: <answer>'. Do not explain.",
        "user": "{question}",
        "assistant": "Answer: {answer}",
    },
    "cot": {
        "system": "Think step by step, then give the final answer on the last line as 'Answer: <answer>'.",
        "user": "{question}",
        "assistant": "{solution}\nAnswer: {answer}",
    },
    "boxed": {
        "system": "Please reason step by step, and put your final answer within \\boxed{}.",
        "user": "{question}",
        "assistant": "{solution}\nThe final answer is $\\boxed{{answer}}$.",
    },
    "code": {
        "system": "Complete the Python function. Reply with the complete function (imports included) in one "
                  "```python code block.",
        "user": "{question}",
        "assistant": "```python\n{question}{answer}```",
    },
    "choice": {
        "system": "Answer the multiple-choice question. Think briefly, then give the letter of the correct "
                  "option on the last line as 'Answer: X'.",
        "user": "{question}",
        "assistant": "Answer: {answer}",
    },
}

#: Built-in few-shot completion templates.
FEWSHOT_TEMPLATES: dict[str, dict[str, Any]] = {
    "qa": {
        "prefix": "",
        "example": "Question: {question}\nAnswer: {answer}",
        "query": "Question: {question}\nAnswer:",
        "separator": "\n\n",
        "stop": ("\nQuestion:", "\n\n"),
    },
    "code_complete": {
        "prefix": "",
        "example": "{question}{answer}",
        "query": "{question}",
        "separator": "\n\n",
        "stop": ("\nclass", "\ndef", "\n#", "\nif", "\nprint"),
    },
    "qa_cot": {
        "prefix": "",
        "example": "Question: {question}\nAnswer: {solution}\nThe final answer is {answer}.",
        "query": "Question: {question}\nAnswer:",
        "separator": "\n\n",
        "stop": ("\nQuestion:",),
    },
}

#: Templates for code tasks (HumanEval): the prompt is the function's signature and docstring; the
#: completion template continues it directly (stops as in the HumanEval paper), without examples by default.
CODE_TEMPLATES = ("code", "code_complete")

TEMPLATE_NAMES: dict[str, Style] = {**{n: "chat" for n in CHAT_TEMPLATES}, **{n: "fewshot" for n in FEWSHOT_TEMPLATES}}


def template_style(name: str) -> Style:
    """``chat`` or ``fewshot`` for a built-in template name (ConfigError with close matches otherwise)."""
    if name in TEMPLATE_NAMES:
        return TEMPLATE_NAMES[name]
    close = difflib.get_close_matches(name, list(TEMPLATE_NAMES), n=2, cutoff=0.5)
    hint = f"did you mean {' or '.join(close)}? " if close else ""
    raise ConfigError(f"prompt.template: unknown template {name!r}; {hint}chat: {', '.join(CHAT_TEMPLATES)}; "
                      f"fewshot: {', '.join(FEWSHOT_TEMPLATES)}")


def check_placeholders(text: str | None, where: str, known: Sequence[str]) -> None:
    """ConfigError for a ``{word}`` close to one of ``known`` but not in it (a misspelt placeholder);
    other braces are text (JSON, LaTeX)."""
    for m in _WORD_IN_BRACES.finditer(text or ""):
        word = m.group(1)
        if word not in known:
            close = difflib.get_close_matches(word, known, n=1, cutoff=0.75)
            if close:
                raise ConfigError(f"{where}: unknown placeholder {{{word}}}; did you mean {{{close[0]}}}? "
                                  f"(placeholders: {', '.join('{' + p + '}' for p in known)})")


def check_format(text: str, where: str, *, needs_question: bool) -> None:
    """ConfigError for a template string without ``{question}`` (when needed) or with a misspelt placeholder."""
    check_placeholders(text, where, PLACEHOLDERS)
    if needs_question and "{question}" not in text:
        raise ConfigError(f"{where}: must contain {{question}} where the question goes")


_CALCULATOR = re.compile(r"<<[^<>]*>>")


def solution_of(q: Question) -> str:
    """A worked solution for a solved example: ``metadata['solution']`` (GSM8K calculator marks removed),
    reasoning-gym's ``answer_cot``, or else the answer itself."""
    sol = q.metadata.get("solution")
    if not isinstance(sol, str) or not sol.strip():
        entry = q.metadata.get("entry")
        meta = entry.get("metadata") if isinstance(entry, dict) else None
        sol = meta.get("answer_cot") if isinstance(meta, dict) else None
    if not isinstance(sol, str) or not sol.strip():
        return q.gold
    return _CALCULATOR.sub("", sol).strip()


def fill(text: str, q: Question, *, with_answer: bool = False) -> str:
    """Replace the placeholders of ``text`` with the question's values (other braces stay)."""
    def value(m: re.Match[str]) -> str:
        key = m.group(1)
        if key == "question":
            return q.question
        if key == "id":
            return q.id
        if not with_answer:
            return ""
        return q.gold if key == "answer" else solution_of(q)
    return _PLACEHOLDER.sub(value, text)


@dataclass
class PromptTemplate:
    """Renders questions as prompts. ``examples`` is a list or a loader called on first use."""

    style: Style
    name: str
    system: str | None = None
    user: str = "{question}"
    assistant: str = "Answer: {answer}"
    prefix: str = ""
    example: str = "Question: {question}\nAnswer: {answer}"
    query: str = "Question: {question}\nAnswer:"
    separator: str = "\n\n"
    stop: tuple[str, ...] = ()
    shots: int = 0
    examples: Sequence[Question] | Callable[[], Sequence[Question]] = field(default=())
    seed: int = 0
    examples_source: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.shots < 0:
            raise ConfigError(f"prompt.shots: must be at least 0 (got {self.shots})")
        check_format(self.user if self.style == "chat" else self.query,
                     "prompt.user" if self.style == "chat" else "prompt.query", needs_question=True)

    @cached_property
    def pool(self) -> tuple[Question, ...]:
        """The candidate examples in a fixed order given by ``seed``."""
        if self.shots == 0:
            return ()
        items = self.examples() if callable(self.examples) else self.examples
        key = lambda q: hashlib.sha256(f"{self.seed}\x00{q.id}\x00{q.question}".encode()).digest()  # noqa: E731
        pool = tuple(sorted(items, key=key))
        if len(pool) < self.shots:
            raise ConfigError(f"prompt.shots: {self.shots} examples asked for but only {len(pool)} available; "
                              "lower prompt.shots or give prompt.examples")
        return pool

    def shots_for(self, q: Question) -> list[Question]:
        """The solved examples shown with ``q`` (never ``q`` itself)."""
        out: list[Question] = []
        for ex in self.pool:
            if len(out) == self.shots:
                break
            if ex.question.strip() != q.question.strip():
                out.append(ex)
        if len(out) < self.shots:
            raise ConfigError(f"prompt.shots: only {len(out)} examples differ from question {q.id!r}; "
                              "lower prompt.shots or give more prompt.examples")
        return out

    def render(self, q: Question) -> Prompt:
        """The prompt for ``q``: a string (few-shot completion) or a tuple of chat messages."""
        examples = self.shots_for(q) if self.shots else []
        if self.style == "chat":
            messages: list[ChatMessage] = []
            if self.system:
                messages.append({"role": "system", "content": fill(self.system, q)})
            for ex in examples:
                messages.append({"role": "user", "content": fill(self.user, ex)})
                messages.append({"role": "assistant", "content": fill(self.assistant, ex, with_answer=True)})
            messages.append({"role": "user", "content": fill(self.user, q)})
            return tuple(messages)
        parts = [fill(self.prefix, q)] if self.prefix else []
        parts += [fill(self.example, ex, with_answer=True) for ex in examples]
        parts.append(fill(self.query, q))
        return self.separator.join(parts)

    def describe(self) -> dict[str, Any]:
        """JSON-serialisable description for run metadata."""
        out: dict[str, Any] = {"style": self.style, "template": self.name, "shots": self.shots, "stop": list(self.stop)}
        if self.style == "chat":
            out |= {"system": self.system, "user": self.user, "assistant": self.assistant if self.shots else None}
        else:
            out |= {"prefix": self.prefix, "example": self.example, "query": self.query, "separator": self.separator}
        if self.shots:
            out |= {"seed": self.seed, "examples": self.examples_source,
                    "example_ids": [q.id for q in self.pool[: self.shots + 1]]}
        return out


def builtin_template(name: str, *, shots: int | None = None, examples: Sequence[Question] | Callable[[], Sequence[Question]] = (),
                     seed: int = 0, **overrides: Any) -> PromptTemplate:
    """A built-in template by name, with optional overrides of its strings (``system``, ``user``, ...)."""
    style = template_style(name)
    base: dict[str, Any] = dict(CHAT_TEMPLATES[name] if style == "chat" else FEWSHOT_TEMPLATES[name])
    base.update({k: v for k, v in overrides.items() if v is not None})
    if "stop" in base:
        base["stop"] = tuple(base["stop"])
    if shots is None:
        shots = 0 if style == "chat" else 3
    return PromptTemplate(style=style, name=name, shots=shots, examples=examples, seed=seed, **base)
