"use strict";
// The page's client for OmniChat's own API: JSON calls with the bearer token, errors as
// ApiError (status + the server's `detail`), and a reader for SSE bodies from fetch (EventSource
// can neither POST nor send an Authorization header).
window.OmniApi = (() => {
  let token = null;
  let onExpired = () => {};

  class ApiError extends Error {
    constructor(status, detail) {
      super(detail);
      this.status = status;
      this.detail = detail;
    }
  }

  /** Calls `method path`; resolves with the Response when it is 2xx, else throws ApiError. */
  async function call(method, path, { json, form, headers = {}, signal } = {}) {
    const sent = { ...headers };
    if (token) sent.authorization = "Bearer " + token;
    let body;
    if (form) {
      sent["content-type"] = "application/x-www-form-urlencoded";
      body = new URLSearchParams(form);
    } else if (json !== undefined) {
      sent["content-type"] = "application/json";
      body = JSON.stringify(json);
    }
    const response = await fetch(path, { method, headers: sent, body, signal, cache: "no-store" });
    // A 401 with a token means the login ran out (or the account is gone): the page goes back
    // to the login screen. Without a token it is just a wrong password.
    if (response.status === 401 && token) {
      token = null;
      onExpired();
      throw new ApiError(401, "Your login has expired");
    }
    if (!response.ok) {
      let detail = response.statusText || "Request failed";
      try {
        const parsed = await response.json();
        if (parsed && typeof parsed.detail === "string") detail = parsed.detail;
      } catch (_) {
        // Not JSON (a proxy's page, say): the status text is all there is.
      }
      throw new ApiError(response.status, detail);
    }
    return response;
  }

  async function json(method, path, options) {
    const response = await call(method, path, options);
    return response.status === 204 ? null : response.json();
  }

  /**
   * Reads an SSE body, calling onEvent({id, data}) for each event with data (comments such as
   * keep-alives are skipped). Resolves when the body ends; rejects on a network error or abort.
   */
  async function readSse(response, onEvent) {
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true }).replace(/\r\n?/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const frame = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        let id = null;
        const data = [];
        for (const line of frame.split("\n")) {
          if (line.startsWith("data:")) data.push(line.slice(line.startsWith("data: ") ? 6 : 5));
          else if (line.startsWith("id:")) id = line.slice(3).trim();
        }
        if (data.length) onEvent({ id, data: data.join("\n") });
      }
    }
  }

  /** The next page's path from a `Link: <…>; rel="next"` header, or null on the last page. */
  function nextLink(response) {
    const found = /<([^>]*)>\s*;\s*rel="?next"?/.exec(response.headers.get("link") || "");
    // Only a path of this server is followed.
    return found && found[1].startsWith("/") && !found[1].startsWith("//") ? found[1] : null;
  }

  return {
    ApiError,
    nextLink,
    call,
    json,
    readSse,
    setToken(value) { token = value; },
    hasToken() { return token !== null; },
    onExpired(handler) { onExpired = handler; },
  };
})();
