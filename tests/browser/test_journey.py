"""One person's whole visit, in the order people do it: sign up on the page, log out and in again,
chat and watch the answer arrive piece by piece, stop an answer, reload in the middle of one and
see it resume, rename a chat and delete another. Screenshots of the moments that matter are saved
in $OMNICHAT_SCREENSHOTS (default: target/browser-screenshots) for a person to look at."""

import os
import pathlib
import uuid

from selenium.webdriver.common.keys import Keys

from page import (answers, el, els, last_answer, no_alert, send, visible, wait_answer_done,
                  wait_for)

SHOTS = pathlib.Path(os.environ.get(
    "OMNICHAT_SCREENSHOTS",
    pathlib.Path(__file__).resolve().parents[2] / "target" / "browser-screenshots"))

LONG = " ".join(f"w{i}" for i in range(120))  # about 3.6 s of echo at 30 ms a word


def shot(driver, name):
    SHOTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(SHOTS / f"journey-{name}.png"))


def titles(driver):
    return [a.text for a in els(driver, "#sessions li a.title")]


def answer_text(driver):
    answer = last_answer(driver)
    return answer.find_element("css selector", ".body").text if answer else ""


def test_a_whole_visit_from_sign_up_to_delete(server, browser):
    name = "journey" + uuid.uuid4().hex[:8]
    email, password = f"{name}@example.com", "a journey password"

    # Sign up on the page: the app opens, logged in.
    browser.get(server.base + "/")
    wait_for(lambda: visible(browser, "#auth"), message="the sign-up form")
    el(browser, "#email").send_keys(email)
    el(browser, "#username").send_keys(name)
    el(browser, "#password").send_keys(password)
    el(browser, "#signup").click()
    wait_for(lambda: visible(browser, "#app"), message="the chat screen after sign-up")
    assert el(browser, "#who").text == name

    # Out, then in again with the same password.
    el(browser, "#logout").click()
    wait_for(lambda: visible(browser, "#auth"), message="the login form after Out")
    el(browser, "#email").send_keys(email)
    el(browser, "#password").send_keys(password)
    el(browser, "#login").click()
    wait_for(lambda: visible(browser, "#app"), message="the chat screen after login")
    wait_for(lambda: els(browser, "#provider option"), message="the provider list")

    # A chat whose answer grows word by word while it streams.
    send(browser, LONG)
    seen = set()

    def grown():
        text = answer_text(browser)
        if text and text != LONG:
            seen.add(len(text.split()))
        return len(seen) >= 4
    wait_for(grown, message="the answer to appear in several pieces")
    shot(browser, "1-streaming")
    done = wait_answer_done(browser)
    assert done.get_attribute("data-status") == "complete"
    assert answer_text(browser) == LONG
    shot(browser, "2-answered")

    # Stop an answer part way.
    send(browser, LONG)
    wait_for(lambda: "w10" in answer_text(browser), message="the second answer under way")
    el(browser, "#stop").click()
    stopped = wait_for(
        lambda: last_answer(browser).get_attribute("data-status") == "stopped" and last_answer(browser),
        timeout=3, message="the answer marked stopped")
    assert len(answer_text(browser).split()) < 120
    assert "stopped" in stopped.find_element("css selector", ".meta").text

    # Reload in the middle of an answer: the page resumes it, every word once.
    wait_for(lambda: el(browser, "#send").is_enabled(), message="Send enabled after the stop")
    send(browser, LONG)
    wait_for(lambda: "w10" in answer_text(browser), message="the third answer under way")
    browser.refresh()
    wait_for(lambda: len(answers(browser)) == 3, message="three answers after the reload")
    shot(browser, "3-resumed-mid-answer")
    resumed = wait_answer_done(browser, count=3)
    assert resumed.get_attribute("data-status") == "complete"
    assert answer_text(browser) == LONG

    # A second chat, then rename the first and delete the second from the list.
    before = browser.current_url
    el(browser, "#new").click()
    # Send waits while the new chat loads: the message goes once the chat is open.
    wait_for(lambda: browser.current_url != before and el(browser, "#send").is_enabled(),
             message="the new chat open")
    send(browser, "a chat to delete")
    wait_answer_done(browser)
    wait_for(lambda: len(titles(browser)) == 2, message="two chats in the list")
    # The server names a new chat after its first answer (the echo provider: its first words).
    wait_for(lambda: "A chat to delete" in titles(browser), message="the new chat's title")
    chats = server.json("GET", "/sessions", server.json(
        "POST", "/token", form={"username": email, "password": password})["access_token"])
    first = min(chats, key=lambda s: s["created_at"])["id"]
    second = max(chats, key=lambda s: s["created_at"])["id"]

    el(browser, f"#sessions li[data-id='{first}'] button.rename").click()
    box = el(browser, "#sessions input.rename")
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys("Word by word", Keys.ENTER)
    wait_for(lambda: "Word by word" in titles(browser), message="the new title")

    delete = el(browser, f"#sessions li[data-id='{second}'] button.delete")
    delete.click()
    delete.click()
    wait_for(lambda: titles(browser) == ["Word by word"], message="the deleted chat to leave")
    el(browser, f"#sessions li[data-id='{first}'] a.title").click()
    wait_for(lambda: len(answers(browser)) == 3, message="the renamed chat's answers")
    shot(browser, "4-renamed-and-deleted")
    statuses = [a.get_attribute("data-status") for a in answers(browser)]
    assert statuses == ["complete", "stopped", "complete"]
    no_alert(browser)
