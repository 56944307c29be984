"""What a person does and sees on the chat page, as small helpers the tests share."""

import time

from selenium.common.exceptions import NoAlertPresentException, StaleElementReferenceException
from selenium.webdriver.common.by import By


def wait_for(condition, timeout=10, message="condition"):
    """Polls `condition()` until it returns something truthy; returns that."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = condition()
            if last:
                return last
        except StaleElementReferenceException:
            pass
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {message} (last: {last!r})")


def el(driver, css):
    return driver.find_element(By.CSS_SELECTOR, css)


def els(driver, css):
    return driver.find_elements(By.CSS_SELECTOR, css)


def visible(driver, css):
    found = els(driver, css)
    return bool(found) and found[0].is_displayed()


def log_in(driver, server, user):
    driver.get(server.base + "/")
    wait_for(lambda: visible(driver, "#auth"), message="the login form")
    el(driver, "#email").send_keys(user["email"])
    el(driver, "#password").send_keys(user["password"])
    el(driver, "#login").click()
    wait_for(lambda: visible(driver, "#app"), message="the chat screen")
    wait_for(lambda: els(driver, "#provider option"), message="the provider list")


def type_prompt(driver, text):
    """Types `text` into the message box (several lines are pasted: Enter would send)."""
    box = el(driver, "#prompt")
    box.clear()
    if "\n" in text:
        driver.execute_script("arguments[0].value = arguments[1];", box, text)
    else:
        box.send_keys(text)


def send(driver, text):
    type_prompt(driver, text)
    el(driver, "#send").click()


def answers(driver):
    return els(driver, "#messages .msg.assistant")


def last_answer(driver):
    found = answers(driver)
    return found[-1] if found else None


def wait_answer_done(driver, count=None, timeout=20):
    """Waits until the last answer has a final status; returns it."""
    def done():
        found = answers(driver)
        if not found or (count is not None and len(found) < count):
            return None
        return found[-1] if found[-1].get_attribute("data-status") else None
    return wait_for(done, timeout, "the answer to finish")


def no_alert(driver):
    try:
        text = driver.switch_to.alert.text
    except NoAlertPresentException:
        return True
    raise AssertionError(f"an alert() popped up: {text!r}")


def no_sideways_scroll(driver):
    return driver.execute_script(
        "const d = document.documentElement;"
        "return d.scrollWidth <= d.clientWidth && document.body.scrollWidth <= d.clientWidth;")
