"""A real OpenAI-compatible server on 127.0.0.1 whose answers have a fixed length.

Every completion is exactly ``length`` tokens (words): ``length - 2`` filler words chosen by the
hash of (prompt, seed) and ``Answer: N``; judge prompts get ``Best: k`` padded to the same
length. Prompt tokens are the words of the message contents (or of the prompt string), so a
predictor counting words predicts every call's tokens exactly.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "online"))
from scripted_server import ScriptedServer, _h  # noqa: E402


class FixedLengthServer(ScriptedServer):
    def __init__(self, length: int = 8, answers: int = 3, **kw: Any) -> None:
        super().__init__(**kw)
        self.length = length
        self.answers = answers

    def _completion(self, path: str, body: dict[str, Any], prompt_json: str) -> dict[str, Any]:
        chat = path.endswith("/chat/completions")
        n = int(body.get("n") or 1)
        seed = body.get("seed")
        prompt = body.get("messages") if chat else body.get("prompt")
        words_in = (sum(len(m["content"].split()) for m in prompt) if chat else len(str(prompt).split()))
        choices, total = [], 0
        for i in range(n):
            s = None if seed is None else seed + i
            h = _h(prompt_json, s)
            length = min(self.length, int(body.get("max_tokens") or 16))
            if "Reply with the number" in prompt_json:
                words = ["Best:", str(h % 2 + 1)]
            else:
                words = ["Answer:", str(h % self.answers)]
            words = [f"x{(h >> k) % 7}" for k in range(max(0, length - len(words)))] + words
            words = words[:length]
            text = " ".join(words)
            total += len(words)
            choice: dict[str, Any] = {"index": i, "finish_reason": "stop"}
            if chat:
                choice["message"] = {"role": "assistant", "content": text}
            else:
                choice["text"] = text
            choices.append(choice)
        return {"id": "fixed", "object": "chat.completion" if chat else "text_completion", "model": body.get("model"),
                "choices": choices, "usage": {"prompt_tokens": words_in, "completion_tokens": total,
                                              "total_tokens": words_in + total}}


def server_model(url: str) -> dict[str, Any]:
    return {"backend": "openai", "name": "fixed", "options": {"base_urls": [url], "max_concurrency": 16}}


if __name__ == "__main__":  # pragma: no cover
    srv = FixedLengthServer().start()
    print(json.dumps({"url": srv.base_url}), flush=True)
    sys.stdin.read()
