"use strict";
// The provider picker: every provider the server lists; one it cannot reach now (`reachable`
// false, the server's quick TCP probe) is shown greyed out and not offered. The model box shows
// the chosen provider's default model as its placeholder.
window.OmniProviders = (() => {
  const $ = (id) => document.getElementById(id);
  let providers = [];

  function find(name) {
    return providers.find((p) => p.name === name) || null;
  }

  function showDefaultModel() {
    const info = find($("provider").value);
    $("model").placeholder = info ? info.default_model : "model";
  }

  /** Shows `list` (GET /providers), keeping the choice when it is still usable. */
  function show(list) {
    providers = list;
    const select = $("provider");
    const kept = select.value;
    select.replaceChildren(...list.map((p) => {
      const option = document.createElement("option");
      option.value = p.name;
      option.disabled = p.reachable === false;
      option.textContent = p.name + (option.disabled ? " (unreachable)" : "");
      option.title = option.disabled
        ? "Not reachable from the server right now"
        : "Default model: " + p.default_model;
      return option;
    }));
    const usable = list.filter((p) => p.reachable !== false).map((p) => p.name);
    select.value = usable.includes(kept) ? kept : usable[0] || "";
    showDefaultModel();
  }

  function clear() {
    providers = [];
    $("provider").replaceChildren();
    $("model").placeholder = "model";
  }

  return { show, find, showDefaultModel, clear };
})();
