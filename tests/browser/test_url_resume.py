"""4. The URL names the open chat, so a reload or a bookmark opens it; a reload during an answer
resumes it (GET /chat/stream/{id} with Last-Event-ID) and Stop still works after."""

import re
import time

from page import (answers, el, els, last_answer, log_in, send, visible, wait_answer_done,
                  wait_for)

LONG = " ".join(f"w{i}" for i in range(90))  # about 2.7 s of echo at 30 ms a word


def chat_in_url(driver):
    match = re.search(r"#/chat/([0-9a-f-]{36})$", driver.current_url)
    return match.group(1) if match else None


def user_texts(driver):
    return [b.text for b in els(driver, "#messages .msg.user .body")]


def test_reload_and_bookmark_open_the_chat_in_the_url(server, browser):
    user = server.user()
    log_in(browser, server, user)
    send(browser, "first chat")
    wait_answer_done(browser)
    first = wait_for(lambda: chat_in_url(browser), message="the chat id in the URL")
    el(browser, "#new").click()
    wait_for(lambda: chat_in_url(browser) not in (None, first), message="a new chat in the URL")
    send(browser, "second chat")
    wait_answer_done(browser)
    second = chat_in_url(browser)
    ids = {s["id"] for s in server.json("GET", "/sessions", user["token"])}
    assert {first, second} == ids

    browser.refresh()
    wait_for(lambda: user_texts(browser) == ["second chat"], message="the second chat after a reload")
    assert chat_in_url(browser) == second

    # A bookmark of the first chat, opened in a fresh page load.
    browser.get(server.base + "/#/chat/" + first)
    browser.refresh()
    wait_for(lambda: user_texts(browser) == ["first chat"], message="the bookmarked chat")
    active = el(browser, "#sessions li.active")
    assert active.get_attribute("data-id") == first

    # Back goes to the chat opened before.
    browser.get(server.base + "/#/chat/" + second)
    wait_for(lambda: user_texts(browser) == ["second chat"], message="the second chat")
    browser.back()
    wait_for(lambda: user_texts(browser) == ["first chat"], message="the first chat after Back")


def resumed_requests(driver):
    return driver.execute_script(
        "return performance.getEntriesByType('resource').map((e) => e.name)"
        ".filter((n) => /\\/chat\\/stream\\/[0-9a-f-]{36}$/.test(n))")


def test_a_reload_during_an_answer_resumes_it_exactly(server, browser):
    user = server.user()
    log_in(browser, server, user)
    send(browser, LONG)
    wait_for(lambda: "w10" in (last_answer(browser).text if answers(browser) else ""),
             message="the answer to be under way")
    browser.refresh()
    wait_for(lambda: visible(browser, "#messages .msg.assistant"), message="the answer after reload")
    answer = wait_answer_done(browser)
    # (A fetch shows in resource timing once its body has ended.)
    assert resumed_requests(browser), "the page resumed through GET /chat/stream/{id}"
    assert answer.get_attribute("data-status") == "complete"
    # Every word once, in order: nothing lost, nothing doubled.
    assert answer.find_element("css selector", ".body").text == LONG
    session = server.json("GET", "/sessions", user["token"])[0]
    stored = server.json("GET", f"/sessions/{session['id']}", user["token"])["messages"][-1]
    assert stored["status"] == "complete" and stored["content"] == LONG


def test_stop_works_after_a_reload(server, browser):
    user = server.user()
    log_in(browser, server, user)
    words = " ".join(f"w{i}" for i in range(300))  # about 9 s
    send(browser, words)
    wait_for(lambda: "w5" in (last_answer(browser).text if answers(browser) else ""),
             message="the answer to be under way")
    browser.refresh()
    wait_for(lambda: "w40" in (last_answer(browser).text if answers(browser) else ""),
             message="the resumed answer to grow")
    assert el(browser, "#send").get_attribute("disabled") is not None, "Send waits for the answer"
    stop = el(browser, "#stop")
    wait_for(lambda: stop.is_enabled(), message="Stop enabled after the reload")
    stop.click()
    answer = last_answer(browser)
    wait_for(lambda: answer.get_attribute("data-status") == "stopped", timeout=2,
             message="the answer marked stopped")
    assert "stopped" in answer.find_element("css selector", ".meta").text
    session = server.json("GET", "/sessions", user["token"])[0]
    stored = server.json("GET", f"/sessions/{session['id']}", user["token"])["messages"][-1]
    assert stored["status"] == "stopped"
    assert len(stored["content"]) < len(words)

    # The chat takes the next prompt at once: no 409.
    wait_for(lambda: el(browser, "#send").is_enabled(), message="Send enabled again")
    send(browser, "after the stop")
    final = wait_answer_done(browser, count=2)
    assert final.get_attribute("data-status") == "complete"
    assert final.find_element("css selector", ".body").text == "after the stop"
    assert els(browser, "#messages .error") == []
