"""Takes docs/chat-page.png: the page in headless Chromium against the real server (echo
provider). Run: OMNICHAT_BIN=target/debug/omnichat python3 tests/browser/screenshot.py"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from conftest import Server, make_driver  # noqa: E402
from page import el, log_in, type_prompt, wait_answer_done  # noqa: E402

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "chat-page.png")

PROMPT = """## Packing list

Three things to **remember**, and the [weather](https://example.com/forecast):

1. passport
2. charger
3. *sunscreen*

| day | city | km |
|-----|------|---:|
| Mon | Lyon | 0 |
| Tue | Nice | 470 |

```sh
omnichat serve --addr 127.0.0.1:8000
```"""


def main():
    server = Server()
    driver = make_driver(1100, 860)
    try:
        user = server.user("ann")
        for title in ("Rust lifetimes, explained", "Dinner ideas for six"):
            server.json("POST", "/sessions", user["token"], body={"title": title})
        log_in(driver, server, user)
        el(driver, "#new").click()
        type_prompt(driver, PROMPT)
        el(driver, "#send").click()
        wait_answer_done(driver)
        driver.execute_script("document.activeElement.blur()")
        driver.save_screenshot(OUT)
    finally:
        driver.quit()
        server.stop()
    print(f"{os.path.abspath(OUT)}: {os.path.getsize(OUT)} bytes")


if __name__ == "__main__":
    main()
