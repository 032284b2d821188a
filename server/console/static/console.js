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

// ---------------------------------------------------------------------------------------------
// Rollouts, firmware and events pages (console-b's section). The same rules: data-* attributes,
// textContent for anything a device or an operator typed.
(function () {
  "use strict";

  // A page fragment that follows the server: re-fetched (at most once a second) when the change
  // stream names a rollout step, and every 2 s while the rollout has not finished (device steps
  // such as offered -> downloading write no audit row, so no change notice comes for them).
  function focusKey(control) {
    const form = control.closest("form");
    return control.tagName + "|" + (form ? form.getAttribute("action") : "") + "|" + control.textContent.trim();
  }

  function liveFragment(el) {
    let scheduled = false;
    let last = 0;
    let lastHtml = null;
    function refresh() {
      if (scheduled) return;
      scheduled = true;
      setTimeout(function () {
        fetch(el.dataset.live, { credentials: "same-origin", headers: { Accept: "text/html" } })
          .then(function (r) { return r.ok ? r.text() : null; })
          .then(function (html) {
            scheduled = false;
            last = Date.now();
            if (html === null || html === lastHtml) return;
            lastHtml = html;
            // Keyboard focus survives the swap: the same control (form and label) is focused again.
            const active = el.contains(document.activeElement) ? document.activeElement : null;
            const key = active && focusKey(active);
            // Server-rendered and autoescaped: parsed inert (no script runs), then moved in.
            const doc = new DOMParser().parseFromString(html, "text/html");
            el.replaceChildren.apply(el, Array.prototype.slice.call(doc.body.childNodes));
            el.dataset.refreshed = String(Number(el.dataset.refreshed || "0") + 1);
            if (key) {
              const again = Array.prototype.find.call(el.querySelectorAll("button, a, input, select"), function (c) {
                return focusKey(c) === key;
              });
              if (again) again.focus();
            }
          })
          .catch(function () { scheduled = false; });
      }, Math.max(0, 1000 - (Date.now() - last)));
    }
    function running() { return el.querySelector('[data-finished="no"]') !== null; }
    setInterval(function () { if (running() && !document.hidden) refresh(); }, 2000);
    if (el.dataset.liveChanges && typeof EventSource !== "undefined") {
      const source = new EventSource(el.dataset.liveChanges);
      source.addEventListener("change", function (message) {
        let change;
        try { change = JSON.parse(message.data); } catch (e) { return; }
        if (change.kind === "rollout" || change.kind === "ota") refresh();
      });
      window.addEventListener("pagehide", function () { source.close(); });
    }
    // Confirmations for forms inside the fragment (they are replaced, so delegated).
    el.addEventListener("submit", function (event) {
      const form = event.target;
      if (form.dataset.confirmLive && !window.confirm(form.dataset.confirmLive)) event.preventDefault();
    });
  }

  function eventRow(e) {
    const tr = document.createElement("tr");
    tr.dataset.id = String(e.id);
    [["Published", e.published_at, ""], ["Event", e.event, ""], ["Data", e.data, "data"], ["Device", e.coreid, "id"]]
      .forEach(function (cell) {
        const td = document.createElement("td");
        td.dataset.label = cell[0];
        if (cell[2]) td.className = cell[2];
        td.textContent = String(cell[1]);
        tr.appendChild(td);
      });
    return tr;
  }

  // The event log: live rows on top, Pause queues them, "Load earlier" appends older pages.
  function eventLog(el) {
    const body = el.querySelector("tbody");
    const status = el.querySelector("[data-log-status]");
    const pause = el.querySelector("[data-log-pause]");
    const earlier = el.querySelector("[data-log-earlier]");
    const queue = [];
    let paused = false;
    function say(text) { if (status) status.textContent = text; }
    function show(e) {
      const empty = el.querySelector("[data-log-empty]");
      if (empty) empty.remove();
      body.insertBefore(eventRow(e), body.firstChild);
    }
    if (el.dataset.stream && typeof EventSource !== "undefined") {
      const source = new EventSource(el.dataset.stream);
      source.onopen = function () { say(paused ? "paused" : "live"); };
      source.onerror = function () { say("connection lost: reconnecting…"); };
      source.onmessage = function (message) {
        let e;
        try { e = JSON.parse(message.data); } catch (x) { return; }
        if (paused) {
          queue.push(e);
          say("paused: " + queue.length + " new event" + (queue.length === 1 ? "" : "s") + " queued");
        } else {
          show(e);
        }
      };
      window.addEventListener("pagehide", function () { source.close(); });
    }
    if (pause) {
      pause.addEventListener("click", function () {
        paused = !paused;
        pause.textContent = paused ? "Resume" : "Pause";
        pause.setAttribute("aria-pressed", paused ? "true" : "false");
        if (!paused) {
          while (queue.length) show(queue.shift());
          say("live");
        } else {
          say("paused");
        }
      });
    }
    if (earlier) {
      earlier.addEventListener("click", function (event) {
        event.preventDefault();
        const rows = body.querySelectorAll("tr[data-id]");
        if (!rows.length) return;
        const oldest = rows[rows.length - 1].dataset.id;
        fetch(el.dataset.history + "&before=" + encodeURIComponent(oldest), { credentials: "same-origin" })
          .then(function (r) { return r.ok ? r.json() : { events: [] }; })
          .then(function (page) {
            const events = page.events || [];
            for (let i = events.length - 1; i >= 0; i--) body.appendChild(eventRow(events[i]));
            if (events.length < 50) earlier.remove();
          });
      });
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-live]").forEach(liveFragment);
    document.querySelectorAll("[data-event-log]").forEach(eventLog);
  });
})();
