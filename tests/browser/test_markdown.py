"""3. Answers are Markdown, rendered while they stream, sanitized, with copy buttons; the page
runs only its own scripts (CSP script-src 'self') from files embedded in the server."""

import gzip
import re

from page import (answers, el, els, log_in, no_alert, type_prompt, wait_answer_done, wait_for)

MARKDOWN = """# Shopping plan

Some *emphasis*, some **strong** words and a [link](https://example.com/docs).

- apples
- pears

1. first
2. second

| fruit | count |
|-------|------:|
| apple | 3 |

```python
print("hello, world")
```
"""

ATTACKS = """<script>window.__pwned = 'script'</script>
<img src=x onerror="window.__pwned = 'img'">
<svg onload="window.__pwned = 'svg'"></svg>
<a href="javascript:window.__pwned='raw-link'" onclick="window.__pwned='onclick'">raw link</a>
<iframe src="javascript:window.top.__pwned='iframe'"></iframe>

[markdown link](javascript:window.__pwned='md-link') and [mixed case](JaVaScRiPt:window.__pwned='case')
and ![image](x" onerror="window.__pwned='image')
"""


def test_markdown_renders_headings_lists_emphasis_links_tables_and_code(server, browser):
    log_in(browser, server, server.user())
    type_prompt(browser, MARKDOWN)
    el(browser, "#send").click()
    answer = wait_answer_done(browser)
    assert answer.find_element("css selector", "h1").text == "Shopping plan"
    assert answer.find_element("css selector", "em").text == "emphasis"
    assert answer.find_element("css selector", "strong").text == "strong"
    assert [li.text for li in answer.find_elements("css selector", "ul li")] == ["apples", "pears"]
    assert [li.text for li in answer.find_elements("css selector", "ol li")] == ["first", "second"]
    link = answer.find_element("css selector", "a[href='https://example.com/docs']")
    assert link.text == "link" and link.get_attribute("target") == "_blank"
    assert "noopener" in link.get_attribute("rel")
    assert [c.text for c in answer.find_elements("css selector", "th")] == ["fruit", "count"]
    assert [c.text for c in answer.find_elements("css selector", "td")] == ["apple", "3"]
    code = answer.find_element("css selector", ".code pre code")
    assert code.text == 'print("hello, world")'
    assert "#" not in answer.find_element("css selector", ".body").text.split("\n")[0]


def test_code_blocks_and_answers_copy_to_the_clipboard(server, browser):
    browser.execute_cdp_cmd("Browser.grantPermissions", {
        "origin": server.base, "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"]})
    log_in(browser, server, server.user())
    type_prompt(browser, "Run this:\n\n```sh\ncargo test --workspace\n```\n")
    el(browser, "#send").click()
    answer = wait_answer_done(browser)
    button = answer.find_element("css selector", ".code button.copy")
    button.click()
    wait_for(lambda: button.text == "Copied", message="the Copied label")
    clipboard = browser.execute_async_script(
        "navigator.clipboard.readText().then(arguments[0], (e) => arguments[0]('error: ' + e))")
    assert clipboard.strip() == "cargo test --workspace"

    answer.find_element("css selector", ".meta button.copy").click()
    clipboard = browser.execute_async_script(
        "navigator.clipboard.readText().then(arguments[0], (e) => arguments[0]('error: ' + e))")
    assert clipboard == "Run this:\n\n```sh\ncargo test --workspace\n```"  # the prompt as sent, trimmed


def test_markdown_is_rendered_while_the_answer_streams(server, browser):
    log_in(browser, server, server.user())
    type_prompt(browser, "# Early heading\n\n" + " ".join(f"word{i}" for i in range(80)))
    el(browser, "#send").click()

    def heading_while_streaming():
        found = answers(browser)
        return (found and not found[-1].get_attribute("data-status")
                and found[-1].find_elements("css selector", "h1"))
    wait_for(heading_while_streaming, message="a rendered heading before the answer ends")
    wait_answer_done(browser)


def test_html_scripts_handlers_and_javascript_links_never_run(server, browser):
    log_in(browser, server, server.user())
    type_prompt(browser, ATTACKS)
    el(browser, "#send").click()
    answer = wait_answer_done(browser)
    # Raw HTML is shown as text, not parsed.
    body = answer.find_element("css selector", ".body")
    assert "<script>" in body.text and "onerror" in body.text
    for tag in ("script", "img", "svg", "iframe"):
        assert answer.find_elements("css selector", tag) == [], tag
    handlers = browser.execute_script(
        "return [...document.querySelectorAll('#messages *')].flatMap((e) =>"
        " [...e.attributes].map((a) => a.name)).filter((n) => n.startsWith('on'))")
    assert handlers == []
    for link in answer.find_elements("css selector", ".body a"):
        href = (link.get_attribute("href") or "").lower()
        assert not href.startswith("javascript:"), href
        if link.text in ("markdown link", "mixed case"):
            link.click()
    no_alert(browser)
    assert browser.execute_script("return window.__pwned === undefined")


def test_the_page_runs_only_its_own_files_cached_and_small(server):
    status, headers, raw = server.request("GET", "/")
    assert status == 200
    csp = headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp
    html = raw.decode()
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), "no inline script"
    assert not re.search(r"\son[a-z]+=", html) and " style=" not in html
    assert "http://" not in html and "https://" not in html, "nothing from elsewhere"
    assets = re.findall(r'(?:src|href)="(/assets/[^"]+)"', html)
    assert {a.split("?")[0] for a in assets} >= {"/assets/marked.js", "/assets/purify.js", "/assets/app.js"}

    total = len(gzip.compress(raw))
    for path in assets:
        status, headers, body = server.request("GET", path)
        assert status == 200, path
        assert "max-age=31536000" in headers["cache-control"], (path, headers["cache-control"])
        etag = headers["etag"]
        status, again, body304 = server.request("GET", path, headers={"if-none-match": etag})
        assert status == 304 and body304 == b"" and again["etag"] == etag, path
        total += len(gzip.compress(body))
    assert total < 200_000, f"{total} bytes compressed"
    # Without this build's version the file is revalidated instead of kept for a year.
    status, headers, _ = server.request("GET", "/assets/app.js")
    assert status == 200 and headers["cache-control"] == "no-cache"
    assert server.request("GET", "/assets/nothing.js")[0] == 404
