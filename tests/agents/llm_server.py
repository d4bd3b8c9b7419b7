"""A scripted LLM server on 127.0.0.1 speaking the OpenAI chat-completions and Anthropic messages protocols.

Each script step is ``(status, payload, delay_s)``: the payload is the JSON object the assistant returns (wrapped
in the provider's envelope), raw text (for malformed output), or an error body for a non-200 status."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def openai_envelope(content: str, model: str) -> dict:
    return {"id": "chatcmpl-1", "object": "chat.completion", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1000, "completion_tokens": 200, "total_tokens": 1200}}


def anthropic_envelope(payload, model: str, tool: str) -> dict:
    block = ({"type": "tool_use", "id": "toolu_1", "name": tool, "input": payload} if isinstance(payload, dict)
             else {"type": "text", "text": payload})
    return {"id": "msg_1", "type": "message", "role": "assistant", "model": model, "content": [block],
            "stop_reason": "tool_use", "stop_sequence": None, "usage": {"input_tokens": 1000, "output_tokens": 200}}


class LLMServer:
    def __init__(self, script: list[tuple[int, object, float]]):
        self.script = list(script)
        self.requests: list[dict] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append({"path": self.path, "body": body,
                                        "headers": {k.lower(): v for k, v in self.headers.items()}})
                status, payload, delay = server.script.pop(0) if server.script else (500, "script exhausted", 0)
                time.sleep(delay)
                if status != 200:
                    out = {"error": {"message": str(payload), "type": "server_error"}}
                elif self.path.endswith("/messages"):
                    out = anthropic_envelope(payload, body["model"], body["tools"][0]["name"])
                else:
                    content = payload if isinstance(payload, str) else json.dumps(payload)
                    out = openai_envelope(content, body["model"])
                data = json.dumps(out).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client timed out first

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
