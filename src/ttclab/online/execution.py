"""Execution feedback for the ``execution`` critique: the candidate program run on the question's
sample tests in the sandbox (:func:`ttclab.verify.code.aexecution_feedback`). The feedback is
passed/total and the first failure's error type, input, expected and actual output, truncated by
the sandbox; a completion with no program says so. Runs off the event loop with bounded parallelism.
"""

from __future__ import annotations

from ttclab.errors import ConfigError, DataError
from ttclab.tasks.base import Question


async def execution_feedback(question: Question, completion: str) -> str:
    """The sandbox's report on ``completion``'s program for ``question`` (a code question)."""
    from ttclab.verify.code import aexecution_feedback, code_metadata

    try:
        code_metadata(question)
    except DataError:
        raise ConfigError(f"critique kind execution: question {question.id} is not a code question; use a code "
                          "task (task: {source: humaneval}) or another critique kind") from None
    text, _report = await aexecution_feedback(completion, question)
    return text
