// Fleetgate console: the one first-party script. Pages work without it (forms POST and
// redirect); it adds live notices from the product's change stream and select-all boxes.
// Data comes from data-* attributes (the CSP allows no inline script); text is set with
// textContent only (never parsed as HTML).
"use strict";

(function () {
  // A banner counting what changed since the page was rendered: rows never move under the pointer.
  function watchChanges(el) {
    const url = el.dataset.changes;
    if (!url || typeof EventSource === "undefined") return;
    const banner = document.getElementById(el.dataset.banner || "live-banner");
    const text = banner && banner.querySelector("[data-text]");
    const kinds = (el.dataset.kinds || "").split(" ").filter(Boolean);
    let count = 0;
    const source = new EventSource(url);
    source.addEventListener("change", function (message) {
      let change;
      try { change = JSON.parse(message.data); } catch (e) { return; }
      if (kinds.length && kinds.indexOf(change.kind) < 0) return;
      if (el.dataset.device && change.device_id !== el.dataset.device) return;
      count += 1;
      if (banner && text) {
        text.textContent = el.dataset.noun
          ? count + " " + el.dataset.noun + (count === 1 ? "" : "s")
          : count + " change" + (count === 1 ? "" : "s") + " since this page was loaded";
        banner.hidden = false;
      }
    });
    window.addEventListener("pagehide", function () { source.close(); });
  }

  function selectAll(box) {
    box.addEventListener("change", function () {
      const form = box.form || document;
      form.querySelectorAll('input[type=checkbox][name="' + box.dataset.selectAll + '"]').forEach(function (c) {
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
    document.querySelectorAll("[data-changes]").forEach(watchChanges);
    document.querySelectorAll("input[data-select-all]").forEach(selectAll);
    document.querySelectorAll("form[data-confirm]").forEach(confirmSubmit);
  });
})();
