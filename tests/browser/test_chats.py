"""5. Chats people can manage and answers whose state is always clear: rename and delete from
the list, a thinking sign, stopped marked at once, errors shown as errors, Send held back while an
answer streams, New reusing an empty chat, a double click sending once, and an expired login
returning to the login screen without alert()."""

import time

from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.keys import Keys

from page import (answers, el, els, last_answer, log_in, no_alert, send, type_prompt, visible,
                  wait_answer_done, wait_for)


def titles(driver):
    return [a.text for a in els(driver, "#sessions li a.title")]


def test_rename_and_delete_from_the_list(server, browser):
    user = server.user()
    for title in ("Keep me", "Delete me"):
        server.json("POST", "/sessions", user["token"], body={"title": title})
    log_in(browser, server, user)
    wait_for(lambda: sorted(titles(browser)) == ["Delete me", "Keep me"], message="both chats")

    row = next(r for r in els(browser, "#sessions li") if r.text.startswith("Keep me"))
    row.find_element("css selector", "button.rename").click()
    box = el(browser, "#sessions input.rename")
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys("Holiday plans", Keys.ENTER)
    wait_for(lambda: "Holiday plans" in titles(browser), message="the new title")
    stored = {s["title"] for s in server.json("GET", "/sessions", user["token"])}
    assert stored == {"Holiday plans", "Delete me"}

    # Escape leaves the title as it was.
    row = next(r for r in els(browser, "#sessions li") if r.text.startswith("Holiday"))
    row.find_element("css selector", "button.rename").click()
    el(browser, "#sessions input.rename").send_keys("oops", Keys.ESCAPE)
    wait_for(lambda: sorted(titles(browser)) == ["Delete me", "Holiday plans"], message="unchanged")

    row = next(r for r in els(browser, "#sessions li") if r.text.startswith("Delete me"))
    doomed = row.get_attribute("data-id")
    row.find_element("css selector", "a.title").click()
    wait_for(lambda: doomed in browser.current_url, message="the chat to open")
    delete = el(browser, f"#sessions li[data-id='{doomed}'] button.delete")
    delete.click()
    assert delete.text == "Delete?", "a first click only asks"
    assert len(server.json("GET", "/sessions", user["token"])) == 2
    delete.click()
    wait_for(lambda: titles(browser) == ["Holiday plans"], message="the row to go")
    assert server.request("GET", f"/sessions/{doomed}", user["token"])[0] == 404
    assert doomed not in browser.current_url
    no_alert(browser)


def test_thinking_sign_until_the_first_token(ollama_server, browser):
    log_in(browser, ollama_server, ollama_server.user())
    el(browser, "#provider").send_keys("ollama")
    send(browser, "slow please")
    answer = wait_for(lambda: last_answer(browser), message="the answer bubble")
    thinking = answer.find_element("css selector", ".thinking")
    assert thinking.is_displayed() and "Thinking" in thinking.text
    wait_for(lambda: "Hello" in answer.text, message="the first token")
    assert answer.find_elements("css selector", ".thinking") == []
    wait_answer_done(browser)
    assert answer.find_element("css selector", ".body").text == "Hello from the fake model."


def test_provider_errors_look_like_errors_with_detail_on_demand(ollama_server, browser):
    log_in(browser, ollama_server, ollama_server.user())
    el(browser, "#provider").send_keys("ollama")
    send(browser, "please fail")
    answer = wait_answer_done(browser)
    assert "error" in answer.get_attribute("class").split()
    note = answer.find_element("css selector", ".error-note")
    short = note.find_element("css selector", ".error-text").text
    assert short and len(short) < 80 and "{" not in short and "not found" not in short, short
    detail = note.find_element("css selector", "details pre")
    assert not detail.is_displayed(), "the detail waits for a click"
    note.find_element("css selector", "summary").click()
    assert "not found" in detail.text
    assert el(browser, "#prompt").get_attribute("value") == "please fail", "the prompt is kept"

    # A stream that breaks off keeps its text and says it failed.
    send(browser, "break off")
    broken = wait_answer_done(browser, count=2)
    assert broken.find_element("css selector", ".body").text == "Hello from"
    assert broken.find_elements("css selector", ".error-note")
    no_alert(browser)


def test_stopped_is_marked_at_once_and_send_waits_for_the_answer(server, browser):
    user = server.user()
    log_in(browser, server, user)
    send(browser, " ".join(f"w{i}" for i in range(200)))
    answer = wait_for(lambda: last_answer(browser), message="the answer")
    wait_for(lambda: "w3" in answer.text, message="the answer under way")
    assert not el(browser, "#send").is_enabled()
    type_prompt(browser, "too early")
    el(browser, "#prompt").send_keys(Keys.ENTER)
    time.sleep(0.3)
    assert [u.text for u in els(browser, "#messages .msg.user .body")] == [answer_prompt(server, user)]
    el(browser, "#stop").click()
    wait_for(lambda: answer.get_attribute("data-status") == "stopped", timeout=1.5,
             message="stopped shown at once")
    assert "stopped" in answer.find_element("css selector", ".meta").text
    assert els(browser, "#messages .error") == [], "no 409 or other error"


def answer_prompt(server, user):
    session = server.json("GET", "/sessions", user["token"])[0]
    return server.json("GET", f"/sessions/{session['id']}", user["token"])["messages"][0]["content"]


def test_new_reuses_an_untouched_empty_chat(server, browser):
    user = server.user()
    log_in(browser, server, user)
    for _ in range(3):
        el(browser, "#new").click()
        time.sleep(0.3)
    wait_for(lambda: len(titles(browser)) == 1, message="one chat in the list")
    assert len(server.json("GET", "/sessions", user["token"])) == 1
    send(browser, "now it is used")
    wait_answer_done(browser)
    wait_for(lambda: titles(browser) == ["Now it is used"], message="the server's title from the first prompt")
    el(browser, "#new").click()
    wait_for(lambda: len(titles(browser)) == 2, message="a second chat")
    el(browser, "#new").click()
    time.sleep(0.5)
    assert len(server.json("GET", "/sessions", user["token"])) == 2


def test_a_double_click_on_send_sends_once(server, browser):
    user = server.user()
    log_in(browser, server, user)
    type_prompt(browser, "only once")
    ActionChains(browser).double_click(el(browser, "#send")).perform()
    wait_answer_done(browser)
    time.sleep(0.5)
    assert len(server.json("GET", "/sessions", user["token"])) == 1
    assert [u.text for u in els(browser, "#messages .msg.user .body")] == ["only once"]
    assert len(answers(browser)) == 1 and els(browser, "#messages .error") == []
    session = server.json("GET", "/sessions", user["token"])[0]
    assert len(server.json("GET", f"/sessions/{session['id']}", user["token"])["messages"]) == 2


def test_an_expired_login_returns_to_the_login_screen(start_server, browser):
    server = start_server("--token-ttl-secs", "1")
    log_in(browser, server, server.user())
    time.sleep(7)  # the token's lifetime plus the server's 5 s leeway
    el(browser, "#new").click()
    wait_for(lambda: visible(browser, "#auth"), message="the login screen")
    assert "expired" in el(browser, "#status").text.lower()
    no_alert(browser)
    assert not visible(browser, "#app")
