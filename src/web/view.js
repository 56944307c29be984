"use strict";
// The message area: user bubbles, assistant answers (Markdown re-rendered as text streams in, a
// "thinking" sign before the first token, their final status), errors in their own style with
// a short message and the server's detail on demand, and the last turn's Regenerate and Edit.
window.OmniView = (() => {
  const { markdown, copyButton, copyWith } = window.OmniRender;
  const area = () => document.getElementById("messages");

  /** Whether the reader is at the bottom, so new text should keep it there. */
  function atBottom() {
    const box = area();
    return box.scrollHeight - box.scrollTop - box.clientHeight < 48;
  }

  function follow(wasAtBottom) {
    if (wasAtBottom) area().scrollTop = area().scrollHeight;
  }

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function user(text) {
    const bubble = element("div", "msg user");
    bubble.append(element("div", "body", text));
    area().append(bubble);
    follow(true);
    return bubble;
  }

  const CODES = {
    upstream_unreachable: "Could not reach the provider.",
    upstream_timeout: "The provider took too long to answer.",
    upstream_rate_limited: "The provider is busy right now. Try again in a moment.",
    provider_quota_exhausted: "The provider account is out of quota or credit.",
    upstream_unauthorized: "The provider refused this server's credentials.",
    upstream_rejected: "The provider refused the request.",
    upstream_error: "The provider failed.",
    provider_not_configured: "This provider is not set up on this server.",
    model_not_allowed: "This model is not offered here.",
    answer_too_long: "The answer was cut off: it grew too long.",
    answer_not_stored: "The answer could not be saved.",
  };
  const STATUSES = {
    400: "The server refused the request.",
    402: CODES.provider_quota_exhausted,
    404: "This chat no longer exists.",
    409: "This chat cannot take a new message right now.",
    413: "The message is too long.",
    429: "Too many requests right now. Try again in a moment.",
    502: CODES.upstream_error,
    503: "The server is busy. Try again in a moment.",
    504: CODES.upstream_timeout,
  };

  /**
   * A short message for people and the full detail: from an ApiError (status + detail), a
   * stream's error event ({message, code}), or anything thrown (a network failure).
   */
  function describe(error) {
    if (error && error.status) {
      const clipped = error.detail.length > 160 ? error.detail.slice(0, 157) + "…" : error.detail;
      const short = STATUSES[error.status] || (error.status === 422 ? clipped : "Something went wrong.");
      return { short, detail: `HTTP ${error.status}: ${error.detail}` };
    }
    if (error && error.code) {
      return { short: CODES[error.code] || "The answer failed.", detail: `${error.code}: ${error.message}` };
    }
    const message = (error && error.message) || String(error);
    return { short: "The server could not be reached.", detail: message };
  }

  /** The error block: a short message, the detail behind a disclosure. */
  function errorBlock({ short, detail }) {
    const block = element("div", "error-note");
    block.setAttribute("role", "alert");
    block.append(element("span", "error-text", short));
    if (detail && detail !== short) {
      const more = element("details");
      more.append(element("summary", "", "Details"), element("pre", "", detail));
      block.append(more);
    }
    return block;
  }

  /** A notice in the message area (not an answer), such as a chat that could not be opened. */
  function notice(error) {
    const bubble = element("div", "msg notice error");
    bubble.append(errorBlock(describe(error)));
    area().append(bubble);
    follow(true);
  }

  /**
   * An assistant answer. `text` may come in pieces; rendering happens at most once a frame.
   * Returns the handle the chat logic drives.
   */
  function assistant({ provider, model, text = "", thinking = true }) {
    const bubble = element("div", "msg assistant");
    const body = element("div", "body markdown");
    const sign = element("div", "thinking", "Thinking");
    sign.setAttribute("aria-label", "The model is thinking");
    const meta = element("div", "meta");
    const label = element("span", "label", [provider, model].filter(Boolean).join(" · "));
    const status = element("span", "status");
    const copy = copyButton("Copy", "Copy the answer");
    copy.classList.add("copy-answer");
    copy.hidden = true;
    meta.append(label, status, copy);
    bubble.append(body, meta);
    area().append(bubble);

    let current = text;
    let frame = 0;
    const render = () => {
      frame = 0;
      const bottom = atBottom();
      body.replaceChildren(markdown(current));
      follow(bottom);
    };
    const handle = {
      bubble,
      get text() { return current; },
      append(delta) {
        current += delta;
        sign.remove();
        if (!frame) frame = requestAnimationFrame(render);
      },
      /** The final state: complete, stopped, error or interrupted. */
      finish(state) {
        if (frame) cancelAnimationFrame(frame);
        render();
        sign.remove();
        bubble.classList.remove("streaming");
        bubble.dataset.status = state;
        status.textContent = state === "complete" ? "" : state;
        if (state === "stopped") bubble.classList.add("stopped");
        copy.hidden = current === "";
      },
      fail(error) {
        bubble.classList.add("error");
        bubble.insertBefore(errorBlock(describe(error)), meta);
        handle.finish("error");
      },
    };
    copy.onclick = () => copyWith(copy, current);
    if (text) render();
    if (thinking) {
      bubble.classList.add("streaming");
      if (!text) bubble.insertBefore(sign, meta);
    }
    follow(true);
    return handle;
  }

  /** A stored answer from the history, finished or still streaming. */
  function stored(message) {
    const streaming = message.status === "streaming";
    const answer = assistant({
      provider: message.provider,
      model: message.model,
      text: message.content,
      thinking: streaming,
    });
    if (streaming) return answer;
    if (message.status === "error") {
      const interrupted = message.finish_reason === "interrupted";
      answer.fail({
        code: interrupted ? "interrupted" : "error",
        message: interrupted ? "The server stopped before the answer was finished." : "The answer failed.",
      });
    } else {
      answer.finish(message.status || "complete");
    }
    return answer;
  }

  // Code copy buttons are re-created at every render, so one listener serves them all.
  document.addEventListener("click", (event) => {
    const button = event.target.closest("#messages .code > button.copy");
    if (button) copyWith(button, button.parentElement.querySelector("pre").textContent);
  });

  function actionButton(className, label, title, onclick) {
    const button = element("button", className, label);
    button.type = "button";
    button.title = title;
    button.onclick = onclick;
    return button;
  }

  /**
   * Regenerate on the last answer and Edit on the last prompt, nowhere else; `on` (with
   * regenerate() and edit(text)) null takes them away, while an answer streams.
   */
  function lastTurn(on) {
    for (const button of area().querySelectorAll("button.regenerate, button.edit")) button.remove();
    if (!on) return;
    const bubbles = area().querySelectorAll(".msg.user, .msg.assistant");
    const last = bubbles[bubbles.length - 1];
    const prompt = [...bubbles].reverse().find((b) => b.classList.contains("user"));
    if (last && last.classList.contains("assistant") && prompt) {
      const meta = last.querySelector(".meta");
      meta.insertBefore(actionButton("regenerate", "Regenerate", "Answer the last prompt again",
        () => on.regenerate()), meta.querySelector("button.copy-answer"));
    }
    if (prompt && !prompt.classList.contains("editing")) {
      let meta = prompt.querySelector(".meta");
      if (!meta) {
        meta = element("div", "meta");
        prompt.append(meta);
      }
      meta.append(actionButton("edit", "Edit", "Change the last prompt and answer it again",
        () => editPrompt(prompt, on)));
    }
  }

  /** Edits the prompt in its bubble: Enter or Save sends it, Escape or Cancel leaves it. */
  function editPrompt(bubble, on) {
    const body = bubble.querySelector(".body");
    const meta = bubble.querySelector(".meta");
    const box = element("textarea", "edit-box");
    box.value = body.textContent;
    box.rows = Math.min(8, box.value.split("\n").length + 1);
    box.setAttribute("aria-label", "Edit the prompt");
    const save = actionButton("primary save-edit", "Save", "Send the changed prompt", () => done(box.value.trim()));
    const cancel = actionButton("cancel-edit", "Cancel", "Keep the prompt as it is", () => done(null));
    const buttons = element("div", "edit-actions");
    buttons.append(save, cancel);
    bubble.classList.add("editing");
    body.hidden = true;
    if (meta) meta.hidden = true;
    bubble.append(box, buttons);
    box.focus();
    box.onkeydown = (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        done(box.value.trim());
      }
      if (event.key === "Escape") { event.preventDefault(); done(null); }
    };
    function done(text) {
      box.remove();
      buttons.remove();
      body.hidden = false;
      if (meta) meta.hidden = false;
      bubble.classList.remove("editing");
      if (text && text !== body.textContent) on.edit(text);
    }
  }

  /** Takes the last answer (and with `andPrompt`, the prompt before it) off the screen. */
  function dropLastTurn(andPrompt) {
    const bubbles = [...area().querySelectorAll(".msg.user, .msg.assistant")];
    const last = bubbles.pop();
    if (last && last.classList.contains("assistant")) last.remove();
    if (!andPrompt) return;
    const prompt = bubbles.reverse().find((b) => b.classList.contains("user"));
    if (prompt) prompt.remove();
  }

  return {
    user, assistant, stored, notice, describe, lastTurn, dropLastTurn,
    clear() { area().replaceChildren(); },
  };
})();
