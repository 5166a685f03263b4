// Helpers shared by the pages' scripts. They format values exactly as the
// server's templates do (format.go), so that a page looks the same before
// and after it updates itself.
"use strict";

const hep = (() => {
  function dur(ns) {
    const ms = Math.floor(ns / 1e6);
    if (ms <= 0) return "0s";
    if (ms < 1000) return ms + "ms";
    const s = ms / 1000;
    if (s < 10) return (Math.floor(s * 10) / 10).toFixed(1) + "s";
    if (s < 60) return Math.floor(s) + "s";
    const pad = (n) => String(n).padStart(2, "0");
    if (s < 3600) return Math.floor(s / 60) + "m " + pad(Math.floor(s % 60)) + "s";
    return Math.floor(s / 3600) + "h " + pad(Math.floor((s % 3600) / 60)) + "m";
  }

  function num(n) {
    return String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  }

  function utc(iso) {
    if (!iso || iso.startsWith("0001-")) return "—";
    return iso.replace("T", " ").replace(/\.\d+/, "").replace("Z", " UTC");
  }

  // state maps the read model's states to the pages' colour classes
  // (stateClass in format.go).
  function state(s) {
    switch (s) {
      case "failed": case "action_failed": case "error": case "lost": return "failed";
      case "interrupted": case "action_interrupted": return "interrupted";
      case "running": case "action_started": case "action_retry": return "running";
      case "waiting": case "action_waiting": return "waiting";
      case "done": case "action_finished": case "executed": case "success": return "done";
      case "cached": case "action_cached": return "cached";
      case "uptodate": case "action_uptodate": return "uptodate";
      case "skipped": return "skipped";
    }
    return "pending";
  }

  function outcome(s) {
    if (s === "success") return "succeeded";
    return s || "unknown";
  }

  // el makes an element; children are nodes or strings (set as text, never
  // parsed as HTML).
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v !== null && v !== undefined && v !== false) e.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children) {
      if (c === null || c === undefined || c === false) continue;
      e.append(typeof c === "string" || typeof c === "number" ? String(c) : c);
    }
    return e;
  }

  const SVG = "http://www.w3.org/2000/svg";
  function svg(tag, attrs, ...children) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    for (const c of children) e.append(c);
    return e;
  }

  const order = ["failed", "done", "cached", "uptodate", "skipped", "running", "waiting"];
  // segments is segments in format.go: parts of a progress bar in
  // thousandths of its width.
  function segments(c, width) {
    const n = { failed: c.failed, done: c.executed, cached: c.cached, uptodate: c.uptodate,
      skipped: c.skipped, running: c.running, waiting: c.waiting };
    let total = c.total, sum = 0;
    for (const k of order) sum += n[k] || 0;
    if (sum > total) total = sum;
    const out = [];
    let x = 0;
    for (const k of order) {
      if (!n[k] || !total) continue;
      const w = (width * n[k]) / total;
      out.push({ cls: k, n: n[k], x: x, w: w });
      x += w;
    }
    return out;
  }

  function done(c) {
    return c.executed + c.cached + c.uptodate + c.failed + c.skipped;
  }

  // clock estimates the server's time, which the elapsed times count
  // from: the page's render time at first, then each answer's Date header.
  let skew = 0;
  function setServerTime(ms, precise) {
    // A Date header counts whole seconds: trust it only when the clocks
    // are clearly apart, so that elapsed times never step back.
    if (isNaN(ms)) return;
    if (precise || Math.abs(ms - now()) > 2000) skew = ms - Date.now();
  }
  function now() {
    return Date.now() + skew;
  }

  // poll fetches url every period ms and gives the JSON to update; update
  // returns false to stop. A failed request is retried, more slowly.
  function poll(url, period, update) {
    let failures = 0;
    async function tick() {
      let again = true;
      try {
        const r = await fetch(url, { headers: { Accept: "application/json" }, cache: "no-store" });
        if (!r.ok) throw new Error(r.status + " " + r.statusText);
        const date = r.headers.get("Date");
        if (date) setServerTime(Date.parse(date), false);
        again = update(await r.json()) !== false;
        failures = 0;
      } catch (e) {
        failures++;
        const live = document.getElementById("live");
        if (live) live.textContent = "not updating: " + e.message + " (retrying)";
      }
      if (again) setTimeout(tick, period * Math.min(1 + failures, 10));
    }
    setTimeout(tick, period);
  }

  return { dur, num, utc, state, outcome, el, svg, segments, done, setServerTime, now, poll };
})();
