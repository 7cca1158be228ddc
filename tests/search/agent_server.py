"""A real OpenAI-compatible server that answers agent prompts with scripted replies, in order
(the last one repeats): valid JSON, malformed JSON, unknown dimensions, bad probabilities..."""

from __future__ import annotations

from typing import Any

from scripted_server import ScriptedServer


class AgentServer(ScriptedServer):
    def __init__(self, replies: list[str], **kw: Any) -> None:
        super().__init__(**kw)
        self.replies = replies
        self.prompts: list[str] = []

    def _completion(self, path: str, body: dict[str, Any], prompt_json: str) -> dict[str, Any]:
        self.prompts.append(prompt_json)
        text = self.replies[min(len(self.prompts) - 1, len(self.replies) - 1)]
        return {"id": "agent", "object": "chat.completion", "model": body.get("model"),
                "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}],
                "usage": {"prompt_tokens": len(prompt_json.split()), "completion_tokens": len(text.split()),
                          "total_tokens": 0}}
