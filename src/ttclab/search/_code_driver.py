"""Runs inside the sandbox (stdlib only; sent as its ``main.py``): loads the controller's source
(``program.py``), then answers each observation line on stdin with ``{"action": decide(obs)}``;
the module is executed afresh at each episode's first decision (``"decision": 0``).

The controller's own ``print`` goes to stderr and its ``input()`` reads nothing, so only the
driver speaks on the protocol; a controller that writes to file descriptor 1 itself produces the
garbage it deserves. An exception in ``decide`` (or in loading) ends the process with its traceback
on stderr; the parent classifies it.
"""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Callable
from types import CodeType


def _load(code: CodeType) -> Callable[..., object]:
    scope: dict[str, object] = {"__name__": "controller"}
    exec(code, scope)
    decide = scope.get("decide")
    if not callable(decide):
        raise NameError("the controller defines no decide(observation) function")
    return decide


def main() -> None:
    requests, replies = sys.stdin, sys.stdout
    sys.stdin = io.StringIO("")
    sys.stdout = sys.stderr
    with open("program.py", encoding="utf-8") as fh:
        code = compile(fh.read(), "controller.py", "exec")
    decide = _load(code)
    replies.write('{"ready": true}\n')
    replies.flush()
    for line in requests:
        observation = json.loads(line)
        if observation.get("decision") == 0:  # a new episode: the module afresh, no state carried over
            decide = _load(code)
        action = decide(observation)
        replies.write(json.dumps({"action": action}) + "\n")
        replies.flush()

if __name__ == "__main__":
    main()
