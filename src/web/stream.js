"use strict";
// Reads one answer's events to its end: from the response of POST /chat/stream (or none, for an
// answer found still streaming after a reload), and whenever the connection drops before [DONE],
// from GET /chat/stream/{id} with Last-Event-ID. Event ids are byte offsets into the answer, so
// the rest comes exactly once: nothing lost, nothing shown twice.
window.OmniStream = (() => {
  const Api = window.OmniApi;
  const TRIES = 4;
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  /**
   * `stream` holds {generation, lastId, answer, controller}; `alive()` says whether the page
   * still shows it. Resolves with how it ended:
   * - "done": [DONE] came (an error event before it is already shown on the answer,
   *   and `stream.failed` is set);
   * - "gone": the user left (another chat, logout); the answer goes on server-side;
   * - "missing": the server no longer knows the generation (404);
   * - "failed": refused or lost, the error shown on the answer.
   */
  async function follow(stream, response, alive) {
    const { answer, controller } = stream;
    let done = false;
    for (let attempt = 0; !done && attempt < TRIES; attempt++) {
      try {
        if (!response) {
          if (attempt > 1) await sleep(400 * attempt);
          if (!alive()) return "gone";
          response = await Api.call("GET", "/chat/stream/" + stream.generation, {
            headers: { "last-event-id": String(stream.lastId) },
            signal: controller.signal,
          });
        }
        await Api.readSse(response, ({ id, data }) => {
          if (id !== null && /^\d+$/.test(id)) stream.lastId = Number(id);
          if (data === "[DONE]") { done = true; return; }
          let event;
          try { event = JSON.parse(data); } catch (_) { return; }
          if (typeof event.delta === "string") answer.append(event.delta);
          if (event.error) { stream.failed = true; answer.fail(event.error); }
        });
      } catch (error) {
        if (!alive()) return "gone";
        if (error.status === 404) return "missing";
        // Any other refusal is final; a network drop is worth another try.
        if (error.status) { answer.fail(error); return "failed"; }
      }
      response = null;
    }
    if (!alive()) return "gone";
    if (!done) {
      answer.fail(new Error("The connection to the server was lost before the answer ended."));
      return "failed";
    }
    return "done";
  }

  return { follow };
})();
