"""A fake Ollama (`POST /api/chat`, newline-delimited JSON) whose behaviour the prompt picks, so
the page can be shown a slow first token, a provider error and a stream that breaks off."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

REPLY = ["Hello", " from", " the", " fake", " model."]
NOT_FOUND = 'model "llama3.2" not found, try pulling it first'


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"  # the body ends when the connection closes

    def log_message(self, *args):
        pass

    def do_POST(self):
        length = int(self.headers.get("content-length", 0))
        request = json.loads(self.rfile.read(length) or b"{}")
        prompt = request.get("messages", [{}])[-1].get("content", "")
        if "fail" in prompt:
            body = json.dumps({"error": NOT_FOUND}).encode()
            self.send_response(404)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        self.send_response(200)
        self.send_header("content-type", "application/x-ndjson")
        self.end_headers()
        if "slow" in prompt:
            time.sleep(1.5)
        words = REPLY[:2] if "break" in prompt else REPLY
        for word in words:
            line = {"model": "llama3.2", "message": {"role": "assistant", "content": word}, "done": False}
            self.wfile.write((json.dumps(line) + "\n").encode())
            self.wfile.flush()
            time.sleep(0.05)
        if "break" in prompt:
            return  # no done line: the provider broke off mid-answer
        done = {"model": "llama3.2", "message": {"role": "assistant", "content": ""},
                "done": True, "done_reason": "stop", "prompt_eval_count": 3, "eval_count": 5}
        self.wfile.write((json.dumps(done) + "\n").encode())


class FakeOllama:
    def __init__(self):
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
