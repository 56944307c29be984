"""9.7 Conversations on the page: the session list loads page by page as it scrolls, a search box
shows matching chats with their snippets (as text), a new chat's title comes from the server
after its first answer without a reload, and a chat's system prompt is saved and shown again."""

import time

from selenium.webdriver.common.keys import Keys

from page import el, els, log_in, send, visible, wait_answer_done, wait_for


def titles(driver):
    return [a.find_element("css selector", ".name").text for a in els(driver, "#sessions li a.title")]


def scroll_list_to_end(driver):
    driver.execute_script("const l = document.getElementById('sessions'); l.scrollTop = l.scrollHeight;")


def test_the_list_loads_more_pages_as_it_scrolls(server, browser):
    user = server.user()
    made = [server.json("POST", "/sessions", user["token"], body={"title": f"Chat {i:03}"})["title"]
            for i in range(110)]
    log_in(browser, server, user)
    wait_for(lambda: len(titles(browser)) == 50, message="the first page")
    assert titles(browser) == made[::-1][:50], "newest first"
    # Nothing more is asked for until the end of the list is in view.
    time.sleep(0.5)
    assert len(titles(browser)) == 50

    scroll_list_to_end(browser)
    wait_for(lambda: len(titles(browser)) == 100, message="the second page")
    scroll_list_to_end(browser)
    wait_for(lambda: len(titles(browser)) == 110, message="the last page")
    assert titles(browser) == made[::-1], "every chat once, in order"

    # A new chat goes on top; the pages already scrolled to stay.
    el(browser, "#new").click()
    wait_for(lambda: len(titles(browser)) == 111, message="the new chat")
    assert titles(browser)[0] == "New Chat" and titles(browser)[1:] == made[::-1]


def test_search_shows_matches_with_their_snippets_as_text(ollama_server, browser):
    server = ollama_server
    user = server.user()
    token = user["token"]
    answered = server.json("POST", "/sessions", token, body={"title": "Trip notes"})
    # The fake model answers "Hello from the fake model.": "fake" is only in the answer.
    status, _, body = server.request("POST", "/chat/stream", token, body={
        "session_id": answered["id"], "prompt": "say something", "provider": "ollama"})
    assert status == 200 and b"[DONE]" in body
    server.json("POST", "/sessions", token, body={"title": "<i>fake</i> <b>plans</b>"})
    server.json("POST", "/sessions", token, body={"title": "Unrelated"})
    log_in(browser, server, user)
    wait_for(lambda: len(titles(browser)) == 3, message="the list")

    el(browser, "#search").send_keys("fake")
    wait_for(lambda: len(titles(browser)) == 2, message="the search results")
    rows = {row.find_element("css selector", ".name").text: row for row in els(browser, "#sessions li")}
    assert set(rows) == {"Trip notes", "<i>fake</i> <b>plans</b>"}, "markup in a title is text"
    snippet = rows["Trip notes"].find_element("css selector", ".snippet")
    assert "the fake model" in snippet.text
    assert els(browser, "#sessions i, #sessions b, #sessions .snippet *") == [], "no HTML from the server"

    # A result opens its chat.
    rows["Trip notes"].find_element("css selector", "a.title").click()
    wait_for(lambda: answered["id"] in browser.current_url, message="the chat to open")
    wait_answer_done(browser)
    assert "Hello from the fake model." in el(browser, "#messages .msg.assistant .body").text

    # No match says so; clearing the box brings the whole list back.
    box = el(browser, "#search")
    box.send_keys(" nowhere")
    wait_for(lambda: "No chats match" in el(browser, "#sessions").text, message="no match")
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys(Keys.BACKSPACE)
    wait_for(lambda: sorted(titles(browser)) == sorted(["Trip notes", "<i>fake</i> <b>plans</b>", "Unrelated"]),
             message="the whole list again")
    assert els(browser, "#sessions .snippet") == []


def test_a_new_chats_title_comes_after_its_first_answer(server, browser):
    user = server.user()
    log_in(browser, server, user)
    browser.execute_script("window.notReloaded = true;")
    send(browser, "plan a weekend in Lisbon with two small kids")
    wait_answer_done(browser)
    # The echo provider's title is the prompt's first six words, given by the server.
    wait_for(lambda: titles(browser) == ["Plan a weekend in Lisbon with"], timeout=8,
             message="the server's title in the list")
    assert browser.execute_script("return window.notReloaded === true;"), "no reload"
    [stored] = server.json("GET", "/sessions", user["token"])
    assert stored["title"] == "Plan a weekend in Lisbon with"
    wait_for(lambda: el(browser, "#chat-title").get_attribute("textContent") == stored["title"],
             message="the title above the chat (shown on phones)")

    # A chat the user named keeps its name.
    el(browser, "#new").click()
    wait_for(lambda: len(titles(browser)) == 2, message="a second chat")
    row = el(browser, "#sessions li.active")
    row.find_element("css selector", "button.rename").click()
    box = el(browser, "#sessions input.rename")
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys("Mine", Keys.ENTER)
    wait_for(lambda: "Mine" in titles(browser), message="the rename")
    send(browser, "another question entirely")
    wait_answer_done(browser, count=1)
    time.sleep(1.5)
    assert sorted(titles(browser)) == ["Mine", "Plan a weekend in Lisbon with"]


def test_the_system_prompt_is_saved_and_shown_after_a_reload(server, browser):
    user = server.user()
    session = server.json("POST", "/sessions", user["token"], body={"title": "Terse chat"})
    log_in(browser, server, user)
    wait_for(lambda: session["id"] in browser.current_url, message="the chat to open")
    assert el(browser, "#system-preview").text == "none"
    assert not el(browser, "#system-prompt").is_displayed(), "folded until asked for"

    el(browser, "#system summary").click()
    box = el(browser, "#system-prompt")
    wait_for(lambda: box.is_displayed(), message="the field")
    box.send_keys("You are terse.")
    box.send_keys(Keys.ENTER)
    wait_for(lambda: server.json("GET", f"/sessions/{session['id']}", user["token"]).get("system_prompt")
             == "You are terse.", message="the prompt saved")

    browser.refresh()
    wait_for(lambda: visible(browser, "#app"), message="the chat screen again")
    wait_for(lambda: el(browser, "#system-preview").text == "You are terse.", message="the prompt shown")
    el(browser, "#system summary").click()
    box = el(browser, "#system-prompt")
    assert box.get_attribute("value") == "You are terse."

    # Escape leaves it as saved; emptying it and leaving the field removes it.
    box.send_keys(" Extra", Keys.ESCAPE)
    assert box.get_attribute("value") == "You are terse."
    box.click()
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys(Keys.BACKSPACE)
    el(browser, "#prompt").click()
    wait_for(lambda: "system_prompt" not in server.json("GET", f"/sessions/{session['id']}", user["token"]),
             message="the prompt removed")
    # The chat still answers, and a new chat starts without the prompt.
    send(browser, "hello there")
    wait_answer_done(browser)
    assert el(browser, "#system-prompt").get_attribute("value") == ""


def test_a_system_prompt_typed_before_any_chat_starts_one(server, browser):
    user = server.user()
    log_in(browser, server, user)
    assert server.json("GET", "/sessions", user["token"]) == []
    el(browser, "#system summary").click()
    box = el(browser, "#system-prompt")
    box.send_keys("Answer in French.", Keys.ENTER)
    wait_for(lambda: [s.get("system_prompt") for s in server.json("GET", "/sessions", user["token"])]
             == ["Answer in French."], message="a chat made with the prompt")
    [session] = server.json("GET", "/sessions", user["token"])
    assert session["title"] == "New Chat"
    wait_for(lambda: session["id"] in browser.current_url, message="the chat open")
    assert box.get_attribute("value") == "Answer in French."
    # New does not hand back a chat that has a system prompt as if it were untouched.
    el(browser, "#new").click()
    wait_for(lambda: len(server.json("GET", "/sessions", user["token"])) == 2, message="a second chat")
    wait_for(lambda: box.get_attribute("value") == "", message="the new chat's empty prompt")


def current_line(server, user):
    [session] = server.json("GET", "/sessions", user["token"])
    messages = server.json("GET", f"/sessions/{session['id']}", user["token"])["messages"]
    return ([(m["role"], m["content"]) for m in messages if not m.get("superseded")],
            [(m["role"], m["content"]) for m in messages if m.get("superseded")])


def test_regenerate_and_edit_the_last_turn(server, browser):
    user = server.user()
    log_in(browser, server, user)
    send(browser, "first question")
    wait_answer_done(browser)
    send(browser, " ".join(f"w{i}" for i in range(60)))
    answer = wait_for(lambda: len(els(browser, "#messages .msg.assistant")) == 2
                      and els(browser, "#messages .msg.assistant")[-1], message="the second answer")
    wait_for(lambda: "w3" in answer.text, message="the answer under way")
    assert els(browser, "button.regenerate, button.edit") == [], "no replacing while an answer streams"
    wait_answer_done(browser, count=2)

    # Only the last answer and the last prompt carry the buttons.
    wait_for(lambda: len(els(browser, "button.regenerate")) == 1, message="Regenerate")
    assert els(browser, "#messages .msg.assistant:last-of-type button.regenerate")
    edits = els(browser, "#messages .msg.user button.edit")
    assert len(edits) == 1
    assert edits[0].find_element("xpath", "ancestor::div[contains(@class,'msg')]").text.startswith("w0")

    el(browser, "button.regenerate").click()
    wait_for(lambda: len(els(browser, "#messages .msg.assistant")) == 2
             and els(browser, "#messages .msg.assistant")[-1].get_attribute("data-status") == "complete",
             message="the new answer")
    line, superseded = current_line(server, user)
    assert [role for role, _ in line] == ["user", "assistant", "user", "assistant"]
    assert superseded == [("assistant", line[3][1])], "the replaced answer is kept, marked"

    # Edit the last prompt in its bubble; Escape leaves it.
    el(browser, "button.edit").click()
    box = el(browser, "#messages .msg.user textarea.edit-box")
    box.send_keys(Keys.ESCAPE)
    assert els(browser, "textarea.edit-box") == []
    wait_for(lambda: els(browser, "button.edit"), message="Edit again").pop().click()
    box = el(browser, "#messages .msg.user textarea.edit-box")
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys("second question", Keys.ENTER)
    wait_for(lambda: [u.find_element("css selector", ".body").text for u in els(browser, "#messages .msg.user")]
             == ["first question", "second question"], message="the edited prompt")
    done = wait_answer_done(browser, count=2)
    assert done.find_element("css selector", ".body").text == "second question"
    line, superseded = current_line(server, user)
    assert line == [("user", "first question"), ("assistant", "first question"),
                    ("user", "second question"), ("assistant", "second question")]
    assert len(superseded) == 3

    # After a reload only the current line shows, the buttons on its last turn.
    browser.refresh()
    wait_for(lambda: len(els(browser, "#messages .msg.assistant")) == 2, message="the chat again")
    assert [u.find_element("css selector", ".body").text for u in els(browser, "#messages .msg.user")] \
        == ["first question", "second question"]
    wait_for(lambda: len(els(browser, "button.regenerate")) == 1 and len(els(browser, "button.edit")) == 1,
             message="the buttons after a reload")
