"""6. The provider list shows which providers can answer now (GET /providers `reachable`)."""

import socket

from page import el, els, log_in


def options(driver):
    return {o.get_attribute("value"): o for o in els(driver, "#provider option")}


def test_unreachable_providers_are_shown_but_not_offered(start_server, browser):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]  # nothing listens once the socket is closed
    server = start_server("--ollama-host", f"http://127.0.0.1:{closed}")
    log_in(browser, server, server.user())
    found = options(browser)
    assert set(found) == {"echo", "ollama"}
    assert found["ollama"].get_attribute("disabled") is not None
    assert "unreachable" in found["ollama"].text
    assert found["echo"].is_enabled() and "unreachable" not in found["echo"].text
    assert el(browser, "#provider").get_attribute("value") == "echo"


def test_a_listening_provider_is_offered(ollama_server, browser):
    log_in(browser, ollama_server, ollama_server.user())
    found = options(browser)
    assert found["ollama"].is_enabled() and found["ollama"].text == "ollama"
