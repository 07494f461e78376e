// Rechecker dashboard: keeps the page's data fresh from its JSON twin, without reloading
// (so filters, scroll position and focus stay). The server renders everything; this only
// fills elements that carry data-* hooks, and writes text with textContent, never HTML.
// The formatting rules below repeat rechecker/frontend/formatting.py; change both together.
"use strict";

(() => {
  const DASH = "—";
  const main = document.getElementById("main");

  const pad = (n) => String(n).padStart(2, "0");

  function duration(seconds) {
    if (seconds === null || seconds === undefined) return DASH;
    const total = Math.max(0, Math.floor(seconds));
    if (total < 60) return `${total}s`;
    const minutes = Math.floor(total / 60);
    if (minutes < 60) return `${minutes}m`;
    const hours = Math.floor(minutes / 60);
    if (hours < 24) return minutes % 60 ? `${hours}h ${minutes % 60}m` : `${hours}h`;
    const days = Math.floor(hours / 24);
    return hours % 24 ? `${days}d ${hours % 24}h` : `${days}d`;
  }

  function utc(iso) {
    const d = new Date(iso);
    return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ` +
      `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} UTC`;
  }

  const decimal = new Intl.NumberFormat("en-US", { minimumFractionDigits: 1, maximumFractionDigits: 1 });
  const integer = new Intl.NumberFormat("en-US");

  // Ages count from the server's clock ("generated_at"), not the reader's, which may be off.
  const FORMATS = {
    utc,
    ms: (v) => `${decimal.format(v)} ms`,
    count: (v) => integer.format(v),
    duration,
    age: (v, now) => duration((now - Date.parse(v)) / 1000),
    ago: (v, now) => `${duration((now - Date.parse(v)) / 1000)} ago`,
    percent: (v) => `${v.toFixed(3).replace(/\.?0+$/, "")} %`,
  };

  const BADGES = { UP: "good", OK: "good", DEGRADED: "warn", PENDING: "pending" };
  const LABELS = { PENDING: "NOT CHECKED" };

  function lookup(data, path) {
    return path.split(".").reduce((value, key) => (value == null ? undefined : value[key]), data);
  }

  const blank = (value) => value === null || value === undefined || value === "";

  const HOOKS = "[data-text], [data-datetime], [data-href], [data-state], [data-row-state], [data-alert]";

  // Show data on one element, as each of its hooks says.
  function apply(el, data, now) {
    const hook = el.dataset;
    if (hook.text) {
      const value = lookup(data, hook.text);
      const format = FORMATS[hook.format];
      el.textContent = blank(value) ? (hook.empty || DASH) : format ? format(value, now) : String(value);
      el.classList.toggle("is-empty", blank(value));
    }
    if (hook.datetime) {
      const value = lookup(data, hook.datetime);
      if (blank(value)) {
        el.removeAttribute("datetime");
        el.removeAttribute("title");
      } else {
        el.setAttribute("datetime", value);
        if (hook.format !== "utc") el.setAttribute("title", utc(value));
      }
    }
    if (hook.href) {
      el.setAttribute("href", hook.hrefBase + encodeURIComponent(lookup(data, hook.href)));
    }
    if (hook.state) {
      const state = String(lookup(data, hook.state) || "PENDING");
      el.className = `badge badge-${BADGES[state] || "bad"}`;
      el.textContent = LABELS[state] || state;
    }
    if (hook.rowState) {
      el.className = `row-${String(lookup(data, hook.rowState)).toLowerCase()}`;
    }
    if (hook.alert) {
      el.classList.toggle("is-alert", Number(lookup(data, hook.alert)) > 0);
    }
  }

  // Replace a table body's rows with copies of its <template>, one per item of the list;
  // rows whose state changed since the last refresh are marked for a moment.
  function fillRows(tbody, data, now) {
    const items = lookup(data, tbody.dataset.rows) || [];
    const before = new Map();
    for (const row of tbody.rows) before.set(row.dataset.key, row.className);
    const template = document.getElementById(tbody.dataset.template);
    const rows = items.map((item) => {
      const row = template.content.firstElementChild.cloneNode(true);
      for (const el of [row, ...row.querySelectorAll(HOOKS)]) apply(el, item, now);
      row.dataset.key = item.id || item.domain;
      const was = before.get(row.dataset.key);
      if (was !== undefined && was !== row.className) row.classList.add("is-changed");
      return row;
    });
    if (!rows.length) {
      const empty = document.getElementById(tbody.dataset.emptyTemplate);
      rows.push(empty.content.firstElementChild.cloneNode(true));
    }
    tbody.replaceChildren(...rows);
  }

  function updatePager(pager, page) {
    for (const link of pager.querySelectorAll("[data-page-link]")) {
      const target = { first: 1, prev: page.number - 1, next: page.number + 1, last: page.pages }[link.dataset.pageLink];
      const params = new URLSearchParams(window.location.search);
      if (target === 1) params.delete("page");
      else params.set("page", String(target));
      const query = params.toString();
      link.setAttribute("href", window.location.pathname + (query ? `?${query}` : ""));
      link.hidden = target < 1 || target > page.pages || target === page.number;
    }
  }

  // Tell screen readers when the fleet's totals change, not on every refresh.
  let lastCounts = null;
  function announce(data) {
    const counts = data.counts;
    const region = document.querySelector("[data-announce]");
    if (!counts || !region || counts.down === undefined) return;
    const text = `${integer.format(counts.down)} down, ${integer.format(counts.degraded)} degraded, ` +
      `${integer.format(counts.up)} up.`;
    if (lastCounts !== null && text !== lastCounts) region.textContent = `Updated: ${text}`;
    lastCounts = text;
  }

  function render(data) {
    const now = Date.parse(data.generated_at) || Date.now();
    for (const el of main.querySelectorAll(HOOKS)) {
      if (!el.closest("tbody[data-rows]")) apply(el, data, now);
    }
    for (const tbody of main.querySelectorAll("tbody[data-rows]")) fillRows(tbody, data, now);
    const pager = main.querySelector("[data-pager]");
    if (pager && data.page) updatePager(pager, data.page);
    announce(data);
  }

  function startRefresh() {
    const api = main && main.dataset.api;
    const seconds = main ? Number(main.dataset.refreshSeconds) : 0;
    if (!api || !(seconds > 0)) return;
    const state = document.querySelector("[data-refresh-state]");
    const toggle = document.querySelector("[data-refresh-toggle]");
    let paused = false;
    let timer = null;

    const say = (text) => { if (state) state.textContent = text; };

    async function refresh() {
      if (paused || document.hidden) return;
      try {
        const response = await fetch(api + window.location.search, {
          headers: { Accept: "application/json" },
          cache: "no-store",
          credentials: "same-origin",
        });
        if (!response.ok) throw new Error(`HTTP ${response.status}`);
        render(await response.json());
        say(`updated ${utc(new Date().toISOString()).slice(11, 19)}, refreshes every ${seconds} s`);
      } catch (error) {
        say(`refresh failed (${error.message}); retrying in ${seconds} s`);
      }
    }

    const schedule = () => {
      clearInterval(timer);
      timer = setInterval(refresh, seconds * 1000);
    };
    schedule();
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden) {
        refresh();
        schedule();
      }
    });
    if (toggle) {
      toggle.hidden = false;
      toggle.addEventListener("click", () => {
        paused = !paused;
        toggle.setAttribute("aria-pressed", String(paused));
        toggle.textContent = paused ? "Resume" : "Pause";
        say(paused ? "auto-refresh paused" : `refreshes every ${seconds} s`);
        if (!paused) refresh();
      });
    }
  }

  // Filters apply as soon as a choice changes; empty and default fields stay out of the
  // URL, so a shared link is as short as the view allows.
  function enhanceFilters() {
    const form = document.querySelector("form[data-filters]");
    if (!form) return;
    for (const select of form.querySelectorAll("select")) {
      select.addEventListener("change", () => form.requestSubmit());
    }
    form.addEventListener("formdata", (event) => {
      for (const field of form.elements) {
        if (field.name && (field.value === "" || field.value === field.dataset.default)) {
          event.formData.delete(field.name);
        }
      }
    });
  }

  if (main) {
    enhanceFilters();
    startRefresh();
  }
})();
