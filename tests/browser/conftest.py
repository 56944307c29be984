"""Fixtures for the browser tests: the real omnichat binary on a free port over a temporary
SQLite database with the echo provider, and headless Chromium driven by chromedriver."""

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One running server process and a tiny HTTP client for setting up test data."""

    def __init__(self, extra_args=()):
        binary = os.environ.get("OMNICHAT_BIN")
        if not binary or not os.path.exists(binary):
            raise RuntimeError(f"OMNICHAT_BIN must name the omnichat binary (got {binary!r})")
        self.dir = tempfile.mkdtemp(prefix="omnichat-browser-")
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = open(os.path.join(self.dir, "server.log"), "wb")
        args = [
            binary, "serve",
            "--addr", f"127.0.0.1:{self.port}",
            "--database-url", f"sqlite://{self.dir}/db?mode=rwc",
            "--scrypt-log-n", "4",
            "--echo-delay-ms", "30",
            "--openai-api-key", "", "--gemini-api-key", "", "--anthropic-api-key", "",
            *extra_args,
        ]
        env = {k: v for k, v in os.environ.items() if not k.startswith("OMNICHAT_") or k == "OMNICHAT_BIN"}
        env.setdefault("RUST_LOG", "warn")
        self.process = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"omnichat exited: {self.read_log()}")
            try:
                urllib.request.urlopen(self.base + "/healthz", timeout=1).read()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"omnichat did not start: {self.read_log()}")

    def read_log(self):
        with open(os.path.join(self.dir, "server.log"), "rb") as f:
            return f.read().decode(errors="replace")[-4000:]

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def request(self, method, path, token=None, body=None, form=None, headers=None):
        """Returns (status, headers, body bytes) without raising on 4xx/5xx."""
        sent = dict(headers or {})
        data = None
        if token:
            sent["authorization"] = "Bearer " + token
        if form is not None:
            data = urllib.parse.urlencode(form).encode()
            sent["content-type"] = "application/x-www-form-urlencoded"
        elif body is not None:
            data = json.dumps(body).encode()
            sent["content-type"] = "application/json"
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=sent)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, r.headers, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.headers, e.read()

    def json(self, method, path, token=None, body=None, form=None):
        status, _, raw = self.request(method, path, token, body, form)
        assert 200 <= status < 300, f"{method} {path}: {status} {raw[:300]!r}"
        return json.loads(raw) if raw else None

    def user(self, name=None):
        """Signs up a fresh user; returns dict(email, password, username, token)."""
        name = name or "user" + uuid.uuid4().hex[:8]
        user = {"username": name, "email": f"{name}@example.com", "password": "a strong password"}
        self.json("POST", "/users/", body=user)
        user["token"] = self.json("POST", "/token", form={"username": user["email"], "password": user["password"]})["access_token"]
        return user


@pytest.fixture(scope="session")
def server():
    s = Server()
    yield s
    s.stop()


@pytest.fixture
def start_server():
    """Starts servers with extra flags for one test; all stopped after it."""
    started = []

    def start(*extra):
        s = Server(extra)
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()


def make_driver(width, height, mobile=False):
    options = webdriver.ChromeOptions()
    options.binary_location = os.environ.get("CHROMIUM_BIN", "/usr/bin/chromium")
    profile = tempfile.mkdtemp(prefix="omnichat-chromium-")
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", f"--user-data-dir={profile}",
                 f"--window-size={width},{height}"):
        options.add_argument(flag)
    service = Service(os.environ.get("CHROMEDRIVER_BIN", "/usr/bin/chromedriver"))
    driver = webdriver.Chrome(options=options, service=service)
    # The exact viewport, as a phone reports it (the window size includes no chrome headless,
    # but this makes it certain).
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile,
    })
    driver.profile_dir = profile
    return driver


def page_errors(driver):
    """Script errors and CSP violations the page logged (failed requests the tests provoke
    on purpose are left out)."""
    return [entry for entry in driver.get_log("browser")
            if entry.get("source") in ("javascript", "security")]


def close(driver):
    try:
        errors = page_errors(driver)
    finally:
        driver.quit()
        shutil.rmtree(driver.profile_dir, ignore_errors=True)
    assert errors == [], errors


@pytest.fixture
def browser():
    driver = make_driver(1280, 800)
    yield driver
    close(driver)


@pytest.fixture
def phone():
    driver = make_driver(390, 844, mobile=True)
    yield driver
    close(driver)


@pytest.fixture
def ollama_server(start_server):
    """A server whose ollama provider is the fake in fake_ollama.py (retries kept short)."""
    from fake_ollama import FakeOllama

    fake = FakeOllama()
    yield start_server("--ollama-host", fake.url, "--upstream-retry-base-delay-ms", "1")
    fake.stop()
