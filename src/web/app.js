"use strict";
// The chat page's logic: login and logout, the session list (pages loaded as it is scrolled,
// search, open, new, rename, delete), the open chat named in the URL (#/chat/<id>) and its system
// prompt, answers streamed, resumed after a reload or a dropped connection (GET /chat/stream/{id}
// with Last-Event-ID) and stopped, and the title the server gives a chat after its first answer.
(() => {
  const Api = window.OmniApi;
  const View = window.OmniView;
  const Sessions = window.OmniSessions;
  const Providers = window.OmniProviders;
  const $ = (id) => document.getElementById(id);
  const TOKEN_KEY = "omnichat-token";
  const PROVIDERS_FRESH_MS = 30000;
  const DEFAULT_TITLE = "New Chat";
  const PAGE = 50;
  const SEARCH_DELAY_MS = 250;
  // The server names a new chat in a task of its own shortly after its first answer ends: the
  // page asks for the title a few times, then gives up (a title request that failed is retried
  // by the server after the next answer).
  const TITLE_POLLS = 10;
  const TITLE_POLL_MS = 300;
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  /**
   * Everything the page holds for the logged-in user. Logout replaces it whole, so work still
   * in flight for the old user sees `s !== state` and draws nothing.
   */
  const blank = () => ({
    sessions: [], drawn: "", next: null, pages: 0, more: false, search: null, searchTicket: 0, searchTimer: 0,
    providersAt: 0, current: null, title: "", systemPrompt: "", count: 0,
    stream: null, sending: false, loading: false, creating: null, ticket: 0, reloaded: new Set(),
  });
  let state = blank();

  const utf8Length = (text) => new TextEncoder().encode(text).length;
  const chatFromUrl = () => (/^#\/chat\/([0-9a-fA-F-]{36})$/.exec(location.hash) || [])[1] || null;

  function say(text) { $("status").textContent = text || ""; }

  function setUrl(id) {
    const wanted = id ? "#/chat/" + id : location.pathname + location.search;
    if ((id && location.hash !== wanted) || (!id && location.hash)) history.pushState(null, "", wanted);
  }

  function updateButtons() {
    const stream = state.stream;
    // One answer at a time per chat: the server would refuse a second one (409).
    $("send").disabled = state.sending || state.loading || stream !== null;
    $("stop").disabled = !(stream && stream.generation && !stream.stopping);
    const idle = state.current && !state.sending && !state.loading && stream === null;
    View.lastTurn(idle ? { regenerate: guarded(regenerate), edit: guarded(edit) } : null);
  }

  function drawer(open) {
    document.body.classList.toggle("drawer-open", open);
    $("menu").setAttribute("aria-expanded", String(open));
    if (open) guarded(loadMore)();
  }

  /** Runs an event handler; a failure becomes a notice unless the user has gone meanwhile. */
  function guarded(handler) {
    return (...args) => {
      const s = state;
      Promise.resolve().then(() => handler(...args)).catch((error) => {
        if (s !== state || (error && (error.status === 401 || error.name === "AbortError"))) return;
        View.notice(error);
      });
    };
  }

  // ---- login and logout ----

  /** Drops the token and everything of the user. `forget` also clears the chat named in the
   * URL (an explicit logout); an expired login keeps it, to reopen it after logging in again. */
  function logout(message, forget) {
    // "Out" also ends the token on the server (this token only: the user's other devices stay
    // logged in), so a copy of it left anywhere stops working. Fire and forget: the page drops
    // everything at once whatever the answer.
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (forget && token) {
      fetch("/logout", { method: "POST", headers: { authorization: "Bearer " + token }, keepalive: true })
        .catch(() => {});
    }
    if (state.stream) state.stream.controller.abort();
    clearTimeout(state.searchTimer);
    state = blank();
    Api.setToken(null);
    sessionStorage.removeItem(TOKEN_KEY);
    View.clear();
    Sessions.clear();
    Providers.clear();
    for (const id of ["who", "chat-title"]) $(id).textContent = "";
    for (const id of ["model", "prompt", "email", "username", "password", "search"]) $(id).value = "";
    showSystemPrompt("");
    if (forget) setUrl(null);
    drawer(false);
    $("app").hidden = true;
    $("auth").hidden = false;
    say(message);
    updateButtons();
  }
  Api.onExpired(() => logout("Your login has expired. Please log in again."));

  async function login() {
    const { access_token: token } = await Api.json("POST", "/token", {
      form: { username: $("email").value.trim(), password: $("password").value },
    });
    Api.setToken(token);
    sessionStorage.setItem(TOKEN_KEY, token);
    $("password").value = "";
    await start();
  }

  async function authenticate(signUp) {
    if ($("auth").classList.contains("busy")) return;
    $("auth").classList.add("busy");
    say("");
    try {
      if (signUp) {
        const email = $("email").value.trim();
        await Api.json("POST", "/users/", {
          json: { username: $("username").value.trim() || email.split("@")[0], email, password: $("password").value },
        });
      }
      await login();
    } catch (error) {
      say(error.detail || "Could not reach the server.");
    } finally {
      $("auth").classList.remove("busy");
    }
  }

  async function start() {
    const s = state;
    const me = await Api.json("GET", "/users/me/");
    if (s !== state) return;
    $("who").textContent = me.username;
    $("auth").hidden = true;
    $("app").hidden = false;
    say("");
    await Promise.all([loadProviders(s), loadSessions(s)]);
    if (s !== state) return;
    const wanted = chatFromUrl() || (s.sessions[0] && s.sessions[0].id);
    if (wanted) await openChat(wanted);
  }

  // ---- providers ----

  async function loadProviders(s) {
    const providers = await Api.json("GET", "/providers");
    if (s !== state) return;
    s.providersAt = Date.now();
    Providers.show(providers);
  }

  // ---- sessions ----

  /** Loads the first page of sessions (newest activity first). Pages already scrolled to stay:
   * the first page replaces the top of the list, and the next page follows where it was. */
  async function loadSessions(s) {
    const response = await Api.call("GET", "/sessions?limit=" + PAGE);
    const page = await response.json();
    if (s !== state) return;
    if (s.pages <= 1) {
      s.sessions = page;
      s.next = Api.nextLink(response);
      s.pages = 1;
    } else {
      const fresh = new Set(page.map((x) => x.id));
      s.sessions = page.concat(s.sessions.filter((x) => !fresh.has(x.id)));
    }
    // The open chat's title may have changed meanwhile (the server's title, a rename elsewhere).
    const open = page.find((x) => x.id === s.current);
    if (open && !s.loading) $("chat-title").textContent = s.title = open.title;
    drawList();
  }

  /** The list being shown: the search's results while the search box holds words. */
  const shown = (s) => s.search || { items: s.sessions, next: s.next };

  /** Loads the next page of what the list shows, when its end has scrolled into view. */
  async function loadMore() {
    const s = state;
    const box = $("sessions");
    const listing = shown(s);
    // A list not on screen (the folded drawer on a phone) has no end in view.
    if (s.more || !listing.next || !box.clientHeight || box.scrollHeight - box.scrollTop - box.clientHeight > 80) return;
    s.more = true;
    try {
      const response = await Api.call("GET", listing.next);
      const page = await response.json();
      if (s !== state || shown(s).next !== listing.next) return;
      const known = new Set(listing.items.map((x) => x.id));
      const added = page.filter((x) => !known.has(x.id));
      if (s.search) {
        s.search.items = s.search.items.concat(added);
        s.search.next = Api.nextLink(response);
      } else {
        s.sessions = s.sessions.concat(added);
        s.next = Api.nextLink(response);
        s.pages += 1;
      }
    } finally {
      s.more = false;
    }
    drawList();
  }

  /** Shows the sessions whose titles or messages hold the words in the search box. */
  async function search(s) {
    if (s !== state) return;
    const q = $("search").value.trim();
    const ticket = ++s.searchTicket;
    $("sessions").scrollTop = 0;
    if (!q) {
      s.search = null;
      drawList();
      return;
    }
    let found;
    try {
      const response = await Api.call("GET", "/sessions?q=" + encodeURIComponent(q));
      found = { q, items: await response.json(), next: Api.nextLink(response), empty: "No chats match." };
    } catch (error) {
      // A query the server refuses (too long, no word in it) says why in the list.
      if (!error.status || error.status === 401) throw error;
      found = { q, items: [], next: null, empty: error.detail };
    }
    if (s !== state || ticket !== s.searchTicket) return;
    s.search = found;
    drawList();
  }

  /** Changes a session's fields in every list that holds it. */
  function patchSession(s, id, fields) {
    for (const items of [s.sessions, s.search ? s.search.items : []]) {
      const entry = items.find((x) => x.id === id);
      if (entry) Object.assign(entry, fields);
    }
  }

  /** Draws the list when what it shows has changed, so a refresh that changes nothing leaves
   * the rows (and whatever the user is about to click) in place. */
  function drawList() {
    const s = state;
    const listing = shown(s);
    const drawn = JSON.stringify([s.current, listing.empty,
      listing.items.map((x) => [x.id, x.title, x.snippet])]);
    if (drawn === s.drawn) {
      if (listing.next) guarded(loadMore)();
      return;
    }
    s.drawn = drawn;
    Sessions.render(listing.items, s.current, {
      open: guarded((id) => openChat(id)),
      rename: guarded(async (id, title) => {
        if (title) {
          const renamed = await Api.json("PUT", "/sessions/" + id, { json: { title } });
          if (s !== state) return;
          if (id === s.current) $("chat-title").textContent = s.title = renamed.title;
          patchSession(s, id, { title: renamed.title });
        }
        s.drawn = ""; // the row's title back in place of the rename box, even if nothing changed
        try {
          await loadSessions(s);
        } finally {
          if (s === state && !s.drawn) drawList();
        }
      }),
      remove: guarded(async (id) => {
        if (s.stream && s.stream.sessionId === id) s.stream.controller.abort();
        await Api.json("DELETE", "/sessions/" + id);
        if (s !== state) return;
        s.sessions = s.sessions.filter((x) => x.id !== id);
        if (s.search) s.search.items = s.search.items.filter((x) => x.id !== id);
        if (id === s.current) {
          closeChat();
          const next = s.sessions[0];
          if (next) await openChat(next.id);
        }
        drawList();
      }),
    }, listing.empty);
    // A list shorter than its box never scrolls: its next page is loaded at once.
    if (listing.next) guarded(loadMore)();
  }

  /** After a chat's first answer: shows the title the server gives it, without a reload. */
  async function awaitTitle(s, id) {
    for (let i = 0; i < TITLE_POLLS; i++) {
      await sleep(TITLE_POLL_MS);
      if (s !== state) return;
      const session = await Api.json("GET", "/sessions/" + id + "?limit=1");
      if (s !== state) return;
      if (session.title !== DEFAULT_TITLE) {
        if (id === s.current) $("chat-title").textContent = s.title = session.title;
        patchSession(s, id, { title: session.title });
        drawList();
        return;
      }
    }
  }

  // ---- the system prompt ----

  function showSystemPrompt(text) {
    state.systemPrompt = text;
    $("system-prompt").value = text;
    $("system-preview").textContent = text ? text.replace(/\s+/g, " ") : "none";
    $("system").classList.toggle("set", Boolean(text));
  }

  /** Saves the system prompt field on the open chat (a new one when none is open). */
  async function saveSystemPrompt() {
    const s = state;
    const wanted = $("system-prompt").value.trim();
    if (wanted === s.systemPrompt || s.loading) return;
    const id = s.current && !s.creating ? s.current : await newChat(true);
    if (s !== state || !id) return;
    const saved = await Api.json("PUT", "/sessions/" + id, { json: { system_prompt: wanted || null } });
    if (s !== state) return;
    patchSession(s, id, { system_prompt: saved.system_prompt, updated_at: saved.updated_at });
    if (id === s.current) showSystemPrompt(saved.system_prompt || "");
    await loadSessions(s);
  }

  /** New chat: an untouched empty one is reused rather than piling up empty chats. It is
   * created without a title, so the server names it after its first answer. */
  async function newChat(keepFocus) {
    const s = state;
    if (s.creating) return s.creating;
    s.creating = (async () => {
      if (s.current && s.count === 0 && s.title === DEFAULT_TITLE && !s.systemPrompt) return s.current;
      const untouched = s.sessions.find((x) => x.id !== s.current && x.title === DEFAULT_TITLE
        && !x.system_prompt && x.created_at === x.updated_at);
      if (untouched) {
        await openChat(untouched.id);
        if (s === state && s.current === untouched.id && s.count === 0) return untouched.id;
      }
      const session = await Api.json("POST", "/sessions", { json: {} });
      if (s !== state) return null;
      s.sessions.unshift(session);
      await openChat(session.id);
      return session.id;
    })();
    try {
      return await s.creating;
    } finally {
      s.creating = null;
      if (s === state && !keepFocus) $("prompt").focus();
    }
  }

  function closeChat() {
    const s = state;
    if (s.stream) s.stream.controller.abort();
    s.stream = null;
    s.current = null;
    s.loading = false;
    s.title = "";
    s.count = 0;
    s.ticket += 1;
    showSystemPrompt("");
    View.clear();
    $("chat-title").textContent = "";
    setUrl(null);
    updateButtons();
  }

  /** Shows chat `id` and follows its answer if one is still streaming. */
  async function openChat(id) {
    const s = state;
    if (s.stream) s.stream.controller.abort(); // the answer goes on server-side; back here resumes it
    s.stream = null;
    const ticket = ++s.ticket;
    s.current = id;
    s.count = 0;
    s.loading = true; // Send waits until the history is in
    showSystemPrompt("");
    setUrl(id);
    drawer(false);
    View.clear();
    drawList();
    updateButtons();
    let session;
    try {
      session = await Api.json("GET", "/sessions/" + id);
    } catch (error) {
      if (s !== state || ticket !== s.ticket || error.status === 401) return;
      s.loading = false;
      closeChat();
      View.notice(error);
      return;
    }
    if (s !== state || ticket !== s.ticket) return;
    s.loading = false;
    s.title = session.title;
    $("chat-title").textContent = session.title;
    showSystemPrompt(session.system_prompt || "");
    // Prompts and answers a regenerate or an edit replaced stay stored, but are not shown.
    const messages = session.messages.filter((m) => !m.superseded);
    s.count = messages.length;
    let answer = null;
    for (const message of messages) {
      if (message.role === "user") View.user(message.content);
      else answer = View.stored(message);
    }
    updateButtons();
    const last = messages[messages.length - 1];
    if (answer && last.status === "streaming" && last.generation_id) {
      // Event ids are byte offsets into the answer: ask for what comes after the stored part.
      const stream = newStream(s, {
        sessionId: id, answer, generation: last.generation_id, lastId: utf8Length(last.content),
      });
      await follow(s, stream, null);
    }
  }

  // ---- answers ----

  function newStream(s, fields) {
    const stream = { ...fields, controller: new AbortController(), stopped: false, stopping: false };
    s.stream = stream;
    updateButtons();
    return stream;
  }

  const gone = (s, stream) => s !== state || stream.controller.signal.aborted;

  /** Shows `stream` to its end (see stream.js), then marks it and refreshes the list. */
  async function follow(s, stream, response) {
    const outcome = await window.OmniStream.follow(stream, response, () => !gone(s, stream));
    if (outcome === "gone") return;
    s.stream = null;
    if (outcome === "missing") {
      // The answer ended between loading the chat and resuming it: loading the chat again
      // (once per answer) shows it finished.
      if (!s.reloaded.has(stream.generation)) {
        s.reloaded.add(stream.generation);
        await openChat(stream.sessionId);
        return;
      }
      stream.answer.fail(new Error("This answer can no longer be followed."));
    }
    if (outcome === "done" && !stream.failed) stream.answer.finish(stream.stopped ? "stopped" : "complete");
    updateButtons();
    loadSessions(s).catch(() => {});
    const entry = s.sessions.find((x) => x.id === stream.sessionId);
    const untitled = stream.sessionId === s.current ? s.title === DEFAULT_TITLE : entry && entry.title === DEFAULT_TITLE;
    if (untitled) awaitTitle(s, stream.sessionId).catch(() => {});
  }

  async function send() {
    const s = state;
    const prompt = $("prompt").value.trim();
    // Checked and set before any await, so a double click or Enter twice sends once.
    if (!prompt || s.sending || s.stream || s.loading) return;
    s.sending = true;
    updateButtons();
    try {
      const id = s.current && !s.creating ? s.current : await newChat();
      if (s !== state || !id || id !== s.current) return;
      const body = { ...chatBody(id), prompt };
      $("prompt").value = "";
      View.user(prompt);
      s.count += 2;
      await converse(s, id, body, prompt);
    } finally {
      s.sending = false;
      if (s === state) updateButtons();
    }
  }

  /** The fields every POST /chat/stream of chat `id` carries: the provider and model chosen. */
  function chatBody(id) {
    const body = { session_id: id, provider: $("provider").value };
    const model = $("model").value.trim();
    if (model) body.model = model;
    return body;
  }

  /** Posts `body` to /chat/stream and shows its answer to its end. `prompt`, when given, goes
   * back into the message box if the server refuses it, so nothing typed is lost. */
  async function converse(s, id, body, prompt) {
    const info = Providers.find(body.provider);
    const answer = View.assistant({ provider: body.provider, model: body.model || (info && info.default_model) });
    const stream = newStream(s, { sessionId: id, answer, generation: null, lastId: 0 });
    let response;
    try {
      response = await Api.call("POST", "/chat/stream", { json: body, signal: stream.controller.signal });
    } catch (error) {
      if (gone(s, stream)) return;
      answer.fail(error);
      if (prompt && !$("prompt").value) $("prompt").value = prompt; // nothing lost: try again at once
      s.stream = null;
      loadSessions(s).catch(() => {});
      return;
    }
    stream.generation = response.headers.get("x-generation-id");
    s.sending = false;
    updateButtons();
    await follow(s, stream, response);
  }

  /** Answers the chat's last prompt again; the answer it replaces leaves the screen. */
  async function regenerate() {
    const s = state;
    const id = s.current;
    if (!id || s.sending || s.stream || s.loading) return;
    s.sending = true;
    updateButtons();
    try {
      View.dropLastTurn(false);
      await converse(s, id, { ...chatBody(id), regenerate: true }, null);
    } finally {
      s.sending = false;
      if (s === state) updateButtons();
    }
  }

  /** Replaces the chat's last prompt with `text` and answers that instead. */
  async function edit(text) {
    const s = state;
    const id = s.current;
    if (!id || !text || s.sending || s.stream || s.loading) return;
    s.sending = true;
    updateButtons();
    try {
      // The prompt's id: a prompt just sent is on screen before the page knows it.
      const session = await Api.json("GET", "/sessions/" + id);
      if (s !== state || id !== s.current) return;
      const last = session.messages.filter((m) => m.role === "user" && !m.superseded).pop();
      if (!last) return;
      View.dropLastTurn(true);
      View.user(text);
      await converse(s, id, { ...chatBody(id), prompt: text, edit_message_id: last.id }, null);
    } finally {
      s.sending = false;
      if (s === state) updateButtons();
    }
  }

  async function stop() {
    const s = state;
    const stream = s.stream;
    if (!stream || !stream.generation || stream.stopping) return;
    stream.stopping = true;
    updateButtons();
    let result;
    try {
      result = await Api.json("POST", "/chat/stream/" + stream.generation + "/stop");
    } catch (error) {
      // Already over (404) or ending (409): the stream's own end will say how.
      if (error.status === 404 || error.status === 409) return;
      stream.stopping = false;
      updateButtons();
      throw error;
    }
    if (s !== state) return;
    if (result && result.status === "stopped") {
      // Marked at once; the stream's own end ([DONE]) follows.
      stream.stopped = true;
      stream.answer.finish("stopped");
    }
  }

  // ---- wiring ----

  $("auth").onsubmit = (event) => { event.preventDefault(); authenticate(false); };
  $("signup").onclick = () => authenticate(true);
  $("logout").onclick = () => logout("", true);
  $("new").onclick = guarded(newChat);
  $("compose").onsubmit = (event) => { event.preventDefault(); guarded(send)(); };
  $("stop").onclick = guarded(stop);
  $("prompt").onkeydown = (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      $("compose").requestSubmit();
    }
  };
  $("provider").onchange = Providers.showDefaultModel;
  $("provider").onfocus = guarded(async () => {
    if (Date.now() - state.providersAt > PROVIDERS_FRESH_MS) await loadProviders(state);
  });
  $("search").oninput = () => {
    const s = state;
    clearTimeout(s.searchTimer);
    s.searchTimer = setTimeout(guarded(() => search(s)), SEARCH_DELAY_MS);
  };
  $("search").onkeydown = (event) => {
    if (event.key === "Escape" && $("search").value) {
      $("search").value = "";
      clearTimeout(state.searchTimer);
      guarded(search)(state);
    }
  };
  $("sessions").onscroll = guarded(loadMore);
  $("system-prompt").onblur = guarded(saveSystemPrompt);
  $("system-prompt").onkeydown = (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      $("system-prompt").blur();
    }
    if (event.key === "Escape") {
      $("system-prompt").value = state.systemPrompt; // nothing saved
      $("system-prompt").blur();
    }
  };
  $("menu").onclick = () => drawer(!document.body.classList.contains("drawer-open"));
  $("scrim").onclick = () => drawer(false);
  window.addEventListener("hashchange", guarded(async () => {
    const id = chatFromUrl();
    if (Api.hasToken() && id && id !== state.current) await openChat(id);
  }));

  const saved = sessionStorage.getItem(TOKEN_KEY);
  if (saved) {
    Api.setToken(saved);
    start().catch((error) => {
      if (error.status !== 401) logout(View.describe(error).short);
    });
  } else {
    logout("");
  }
})();
