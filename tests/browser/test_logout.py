"""1. Logging out leaves nothing of the user in the page."""

import time

from page import answers, el, els, log_in, no_alert, send, visible, wait_answer_done, wait_for

SECRET = "my-private-words-about-tax"


def test_logout_clears_messages_list_fields_and_state(server, browser):
    ann, bob = server.user(), server.user()
    log_in(browser, server, ann)
    send(browser, f"remember {SECRET}")
    wait_answer_done(browser)
    el(browser, "#model").send_keys("echo-1")
    el(browser, "#prompt").send_keys("a draft not sent")
    assert SECRET in browser.find_element("tag name", "body").text
    page_token = browser.execute_script("return sessionStorage.getItem('omnichat-token')")
    assert server.request("GET", "/users/me/", page_token)[0] == 200

    el(browser, "#logout").click()
    wait_for(lambda: visible(browser, "#auth"), message="the login form")
    assert not visible(browser, "#app")
    assert els(browser, "#messages > *") == []
    assert els(browser, "#sessions > *") == []
    assert els(browser, "#provider option") == []
    for field in ("#email", "#username", "#password", "#prompt", "#model"):
        assert el(browser, field).get_attribute("value") == "", field
    assert el(browser, "#who").get_attribute("textContent") == ""
    assert "#/chat/" not in browser.current_url
    assert browser.execute_script("return sessionStorage.length") == 0
    assert SECRET not in browser.page_source
    # Out ended the page's token on the server too; the user's other token still works.
    wait_for(lambda: server.request("GET", "/users/me/", page_token)[0] == 401,
             message="the page's token refused after Out")
    assert server.request("GET", "/users/me/", ann["token"])[0] == 200

    # The next person on this tab sees only their own (empty) account.
    log_in(browser, server, bob)
    time.sleep(0.5)
    assert els(browser, "#sessions > *") == []
    assert answers(browser) == []
    assert SECRET not in browser.page_source
    no_alert(browser)


def test_logout_during_an_answer_stops_drawing_it(server, browser):
    ann, bob = server.user(), server.user()
    log_in(browser, server, ann)
    words = " ".join(f"{SECRET}{i}" for i in range(60))  # about 2 s of echo
    send(browser, words)
    wait_for(lambda: SECRET in (answers(browser)[-1].text if answers(browser) else ""),
             message="the answer to start")
    el(browser, "#logout").click()
    log_in(browser, server, bob)
    time.sleep(2.5)  # longer than the rest of the answer
    assert SECRET not in browser.page_source
    assert els(browser, "#messages > *") == []
