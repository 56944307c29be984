"use strict";
// Answers as Markdown. marked turns the text into HTML; raw HTML a model writes is shown as text,
// never parsed; DOMPurify then strips whatever could still run or load (scripts, event handlers,
// javascript: links, styles, images); code blocks get a copy button. The page's CSP
// (script-src 'self') is the last line behind all of this.
window.OmniRender = (() => {
  const ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
  const escapeHtml = (text) => String(text).replace(/[&<>"']/g, (c) => ESCAPES[c]);

  const parser = new marked.Marked({ gfm: true, breaks: true, async: false });
  parser.use({
    renderer: {
      html({ text }) {
        return escapeHtml(text);
      },
      // Images would load from anywhere the model names; they become plain links instead.
      image({ href, text }) {
        return `<a href="${escapeHtml(href || "")}">${escapeHtml(text || href || "image")}</a>`;
      },
    },
  });

  const SANITIZE = {
    FORBID_TAGS: ["style", "img", "svg", "math", "form", "input", "button", "textarea", "select",
      "iframe", "object", "embed", "video", "audio"],
    FORBID_ATTR: ["style"],
    RETURN_DOM_FRAGMENT: true,
  };
  // Links leave the page in a new tab and carry nothing of it along.
  DOMPurify.addHook("afterSanitizeAttributes", (node) => {
    if (node.tagName === "A" && node.hasAttribute("href")) {
      node.setAttribute("target", "_blank");
      node.setAttribute("rel", "noopener noreferrer nofollow");
    }
  });

  function copyButton(label, title) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "copy";
    button.textContent = label;
    button.title = title;
    return button;
  }

  /** The Markdown `text` as a sanitized DocumentFragment, code blocks with copy buttons. */
  function markdown(text) {
    const fragment = DOMPurify.sanitize(parser.parse(text), SANITIZE);
    for (const pre of fragment.querySelectorAll("pre")) {
      const box = document.createElement("div");
      box.className = "code";
      pre.replaceWith(box);
      box.append(copyButton("Copy", "Copy code"), pre);
    }
    // Wide tables scroll inside the bubble instead of widening the page.
    for (const table of fragment.querySelectorAll("table")) {
      const box = document.createElement("div");
      box.className = "table";
      table.replaceWith(box);
      box.append(table);
    }
    return fragment;
  }

  /** Copies `text`; the clipboard API needs a secure context, so there is a fallback. */
  async function copyText(text) {
    try {
      await navigator.clipboard.writeText(text);
      return true;
    } catch (_) {
      const area = document.createElement("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.className = "offscreen";
      document.body.append(area);
      area.select();
      const copied = document.execCommand("copy");
      area.remove();
      return copied;
    }
  }

  /** Shows "Copied" (or "Copy failed") on `button` for a moment. */
  async function copyWith(button, text) {
    const label = button.dataset.label || button.textContent;
    button.dataset.label = label;
    button.textContent = (await copyText(text)) ? "Copied" : "Copy failed";
    setTimeout(() => { button.textContent = label; }, 1500);
  }

  return { markdown, copyButton, copyWith };
})();
