// Fleetgate console: the one first-party script. Pages work without it (forms POST and
// redirect); it adds live notices from the product's change stream, select-all boxes and
// confirmations. Data comes from data-* attributes (the CSP allows no inline script); text is
// set with textContent only (never parsed as HTML).
"use strict";

(function () {
  // Banners counting what changed since the page was rendered: rows never move under the pointer.
  // One EventSource per stream URL, however many banners listen to it.
  function watchChanges(watchers) {
    const byUrl = new Map();
    watchers.forEach(function (el) {
      const url = el.dataset.changes;
      if (!byUrl.has(url)) byUrl.set(url, []);
      byUrl.get(url).push(makeWatcher(el));
    });
    byUrl.forEach(function (handlers, url) {
      const source = new EventSource(url);
      source.addEventListener("change", function (message) {
        let change;
        try { change = JSON.parse(message.data); } catch (e) { return; }
        handlers.forEach(function (handle) { handle(change); });
      });
      window.addEventListener("pagehide", function () { source.close(); });
    });
  }

  function makeWatcher(el) {
    const banner = document.getElementById(el.dataset.banner);
    const text = banner && banner.querySelector("[data-text]");
    const kinds = (el.dataset.kinds || "").split(" ").filter(Boolean);
    const shown = new Set();
    if (el.dataset.newOnly) {  // devices already on the page are not news
      document.querySelectorAll("#" + el.dataset.newOnly + " [data-device-id]").forEach(function (row) {
        shown.add(row.dataset.deviceId);
      });
    }
    const seen = new Set();
    let count = 0;
    return function (change) {
      if (kinds.length && kinds.indexOf(change.kind) < 0) return;
      if (el.dataset.device && change.device_id !== el.dataset.device) return;
      if (el.dataset.newOnly) {
        if (shown.has(change.device_id) || seen.has(change.device_id)) return;
        seen.add(change.device_id);
      }
      count += 1;
      if (banner && text) {
        text.textContent = count + " " + (count === 1 ? el.dataset.noun : el.dataset.nouns || el.dataset.noun);
        banner.hidden = false;
      }
    };
  }

  function selectAll(box) {
    box.addEventListener("change", function () {
      const scope = box.form || document;
      scope.querySelectorAll('input[type=checkbox][name="' + box.dataset.selectAll + '"]').forEach(function (c) {
        c.checked = box.checked;
      });
    });
  }

  function confirmSubmit(form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    const watchers = document.querySelectorAll("[data-changes]");
    if (watchers.length && typeof EventSource !== "undefined") watchChanges(watchers);
    document.querySelectorAll("input[data-select-all]").forEach(selectAll);
    document.querySelectorAll("form[data-confirm]").forEach(confirmSubmit);
  });
})();
