"""2. Any screen from 360 px up: on a phone the session list folds behind a button, the composer
spans the width and nothing scrolls sideways; at desktop size the list stays on the left."""

import pytest

from conftest import close, make_driver
from page import (el, els, log_in, no_sideways_scroll, send, type_prompt, visible,
                  wait_answer_done, wait_for)

WIDE_ANSWER = (
    "A_word_far_too_long_for_any_phone_" + "x" * 120 + "\n\n"
    "```\n" + "let wide = [" + ", ".join(str(i) for i in range(80)) + "];\n```\n\n"
    "| " + " | ".join(f"column {i}" for i in range(14)) + " |\n"
    "|" + "---|" * 14 + "\n"
    "| " + " | ".join(f"value {i}" for i in range(14)) + " |\n"
)


def rect(driver, css):
    return driver.execute_script(
        "const r = document.querySelector(arguments[0]).getBoundingClientRect();"
        "return {left: r.left, right: r.right, top: r.top, bottom: r.bottom, width: r.width};", css)


def viewport_width(driver):
    return driver.execute_script("return document.documentElement.clientWidth")


def check_phone_layout(driver, server, user):
    log_in(driver, server, user)
    width = viewport_width(driver)
    assert not visible(driver, "#sidebar"), "the session list is folded away"
    assert visible(driver, "#menu")
    compose = rect(driver, "#compose")
    assert compose["left"] == 0 and abs(compose["right"] - width) < 1, compose
    prompt = rect(driver, "#prompt")
    assert prompt["width"] > width * 0.6, prompt
    for button in ("#send", "#stop"):
        r = rect(driver, button)
        assert visible(driver, button) and 0 <= r["left"] and r["right"] <= width, (button, r)

    type_prompt(driver, WIDE_ANSWER)
    el(driver, "#send").click()
    wait_answer_done(driver)
    assert els(driver, "#messages table") and els(driver, "#messages pre")
    assert no_sideways_scroll(driver), "the page scrolls sideways"
    assert rect(driver, "#messages .msg.assistant")["right"] <= width

    # The list opens over the chat and closes again when a chat is picked.
    el(driver, "#menu").click()
    wait_for(lambda: visible(driver, "#sessions li"), message="the session list")
    assert rect(driver, "#sidebar")["right"] <= width
    el(driver, "#sessions li a.title").click()
    wait_for(lambda: not visible(driver, "#sidebar"), message="the list to fold")
    assert no_sideways_scroll(driver)


def test_phone_390x844(server, phone):
    check_phone_layout(phone, server, server.user())


@pytest.mark.parametrize("width,height", [(360, 640)])
def test_smallest_supported_screen(server, width, height):
    driver = make_driver(width, height, mobile=True)
    try:
        check_phone_layout(driver, server, server.user())
    finally:
        close(driver)


def test_desktop_keeps_the_list_beside_the_chat(server, browser):
    log_in(browser, server, server.user())
    send(browser, "hello")
    wait_answer_done(browser)
    assert visible(browser, "#sidebar") and visible(browser, "#sessions li")
    assert not visible(browser, "#menu")
    sidebar = rect(browser, "#sidebar")
    assert sidebar["left"] == 0 and 230 <= sidebar["width"] <= 250, sidebar
    # The composer is one row: provider, model, message, Send, Stop side by side.
    row = [rect(browser, css) for css in ("#provider", "#model", "#prompt", "#send", "#stop")]
    assert all(a["right"] <= b["left"] for a, b in zip(row, row[1:])), row
    assert no_sideways_scroll(browser)
