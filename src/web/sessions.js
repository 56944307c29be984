"use strict";
// The session list: one row per chat with its title (opens it), rename in place (Enter saves,
// Escape cancels) and delete (a second click within a few seconds confirms, so one stray tap
// loses nothing and no blocking confirm() dialog is needed). Search results are the same rows
// with the server's snippet under the title, always as text.
window.OmniSessions = (() => {
  const list = () => document.getElementById("sessions");
  const CONFIRM_FOR_MS = 4000;
  // While a row is being renamed or its delete waits for the confirming click, the list is not
  // drawn again under the user (a title arriving from the server, a page loaded): the latest
  // drawing waits and is done afterwards, unless the action that ends it draws the list itself.
  let holding = 0;
  let pending = null;

  function hold() { holding += 1; }

  function release(drawPending) {
    holding = Math.max(0, holding - 1);
    if (holding || !pending) return;
    const args = pending;
    pending = null;
    if (drawPending) draw(...args);
  }

  function button(className, label, title) {
    const node = document.createElement("button");
    node.type = "button";
    node.className = className;
    node.textContent = label;
    node.title = title;
    node.setAttribute("aria-label", title);
    return node;
  }

  /** Replaces the row's title with an input; resolves the new title, or null when cancelled. */
  function askTitle(row, current) {
    return new Promise((resolve) => {
      const input = document.createElement("input");
      input.className = "rename";
      input.value = current;
      input.maxLength = 200;
      input.setAttribute("aria-label", "Chat title");
      row.replaceChildren(input);
      input.focus();
      input.select();
      let settled = false;
      const settle = (title) => {
        if (settled) return;
        settled = true;
        resolve(title);
      };
      input.onkeydown = (event) => {
        if (event.key === "Enter") { event.preventDefault(); settle(input.value.trim() || null); }
        if (event.key === "Escape") { event.preventDefault(); settle(null); }
      };
      input.onblur = () => settle(input.value.trim() || null);
    });
  }

  /**
   * Shows `sessions` with `currentId` highlighted. `on` has open(id), rename(id, title) and
   * remove(id), each returning a promise; the list is drawn again by the caller afterwards.
   * `empty` is what an empty list says (a search that found nothing).
   */
  function render(...args) {
    if (holding) pending = args;
    else draw(...args);
  }

  function draw(sessions, currentId, on, empty) {
    if (!sessions.length && empty) {
      const row = document.createElement("li");
      row.className = "empty";
      row.textContent = empty;
      list().replaceChildren(row);
      return;
    }
    list().replaceChildren(...sessions.map((session) => {
      const row = document.createElement("li");
      row.dataset.id = session.id;
      if (session.id === currentId) row.className = "active";
      const title = document.createElement("a");
      title.className = "title";
      title.href = "#/chat/" + session.id;
      const name = document.createElement("span");
      name.className = "name";
      name.textContent = session.title;
      title.append(name);
      title.title = session.title;
      if (typeof session.snippet === "string") {
        const snippet = document.createElement("span");
        snippet.className = "snippet";
        snippet.textContent = session.snippet;
        title.append(snippet);
      }
      title.onclick = (event) => { event.preventDefault(); on.open(session.id); };
      const rename = button("rename", "✎", "Rename chat");
      rename.onclick = async () => {
        hold();
        const wanted = await askTitle(row, session.title);
        release(false); // on.rename draws the list again
        on.rename(session.id, wanted !== null && wanted !== session.title ? wanted : null);
      };
      const remove = button("delete", "✕", "Delete chat");
      let armed = null;
      remove.onclick = () => {
        if (armed) {
          clearTimeout(armed);
          armed = null;
          release(false); // on.remove draws the list again
          on.remove(session.id);
          return;
        }
        hold();
        remove.textContent = "Delete?";
        remove.classList.add("armed");
        armed = setTimeout(() => {
          armed = null;
          remove.textContent = "✕";
          remove.classList.remove("armed");
          release(true);
        }, CONFIRM_FOR_MS);
      };
      row.append(title, rename, remove);
      return row;
    }));
  }

  return {
    render,
    clear() {
      holding = 0;
      pending = null;
      list().replaceChildren();
    },
  };
})();
