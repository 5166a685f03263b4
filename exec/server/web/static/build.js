// The build page updates itself while the build runs: every second it
// fetches /builds/ID.json (an api.BuildView) and redraws the parts that
// changed; between answers the elapsed times tick. It stops when the
// build has ended, after drawing the final state. Everything is built
// with DOM methods and text nodes: nothing a build reports is parsed as HTML.
"use strict";

(() => {
  const root = document.getElementById("build");
  if (!root) return;
  const id = root.dataset.id;
  const $ = (x) => document.getElementById(x);
  hep.setServerTime(Date.parse(root.dataset.now), true);

  let elapsedNs = Number($("elapsed").dataset.ns);
  let elapsedAt = hep.now();
  let running = root.dataset.outcome === "running";
  const last = {}; // JSON of each part as last drawn: redraw only what changed

  function changed(part, value) {
    const s = JSON.stringify(value);
    if (last[part] === s) return false;
    last[part] = s;
    return true;
  }

  function actionLink(a) {
    return hep.el("a", { class: "mono", href: "/builds/" + id + "/actions/" + a.id }, a.target);
  }

  function show(section, on) {
    $(section).hidden = !on;
  }

  function drawBar(c) {
    const bar = hep.svg("svg", { class: "bar", viewBox: "0 0 1000 10", preserveAspectRatio: "none", role: "img", "aria-label": "progress" },
      hep.svg("rect", { class: "bar-bg", width: 1000, height: 10 }));
    for (const s of hep.segments(c, 1000)) {
      const t = hep.svg("title");
      t.textContent = hep.num(s.n) + " " + s.cls;
      bar.append(hep.svg("rect", { class: "s-" + s.cls, x: s.x, width: s.w, height: 10 }, t));
    }
    $("bar").replaceChildren(bar);
    const d = hep.done(c);
    let text = hep.num(d) + " of " + hep.num(c.total) + " actions done";
    if (c.total) text += " (" + Math.floor((d * 100) / c.total) + "%)";
    $("progress-text").textContent = text;
    const pending = Math.max(0, c.total - d - c.running - c.waiting);
    const items = [["failed", "failed", c.failed], ["running", "running", c.running], ["waiting", "waiting", c.waiting],
      ["done", "executed", c.executed], ["cached", "cached", c.cached], ["uptodate", "up to date", c.uptodate],
      ["skipped", "skipped", c.skipped], ["pending", "pending", pending]];
    $("counts").replaceChildren(...items.map(([cls, label, n]) =>
      hep.el("li", { class: "c-" + cls + (n ? "" : " zero") }, hep.el("span", { class: "dot s-" + cls }), hep.el("b", {}, hep.num(n)), " " + label)));
  }

  function drawFailures(fs) {
    show("failures-section", fs.length > 0);
    $("failures-count").textContent = fs.length;
    $("failures").replaceChildren(...fs.map((f) => hep.el("article", { class: "failure" },
      hep.el("header", {}, actionLink(f), " ", hep.el("span", { class: "mn" }, f.mnemonic), " ", hep.el("span", { class: "exitcode" }, "exit " + f.exit_code)),
      f.message ? hep.el("p", { class: "msg" }, f.message) : null,
      f.log ? hep.el("pre", { class: "log" }, f.log) : null)));
  }

  function drawRunning(rs) {
    show("running-section", rs.length > 0);
    $("running-count").textContent = rs.length;
    $("running").replaceChildren(...rs.map((r) => hep.el("tr", { class: r.waiting ? "waiting" : null },
      hep.el("td", { class: "mono" }, actionLink(r)),
      hep.el("td", {}, r.mnemonic),
      hep.el("td", {}, r.waiting ? hep.el("span", { class: "badge b-waiting" }, "waiting for another build") : r.where || ""),
      hep.el("td", { class: "num tick", "data-start": r.started }, hep.dur((hep.now() - Date.parse(r.started)) * 1e6)))));
  }

  function drawCritical(steps) {
    show("critical-section", steps.length > 0);
    const longest = Math.max(0, ...steps.map((s) => s.duration_ns));
    $("critical").replaceChildren(...steps.map((s) => hep.el("tr", {},
      hep.el("td", { class: "mono" }, actionLink({ id: s.action, target: s.target })),
      hep.el("td", {}, s.mnemonic),
      hep.el("td", { class: "num" }, hep.dur(s.duration_ns)),
      hep.el("td", { class: "stepbar" }, hep.svg("svg", { class: "bar", viewBox: "0 0 1000 10", preserveAspectRatio: "none" },
        hep.svg("rect", { class: "s-running", width: longest ? Math.max(2, (1000 * s.duration_ns) / longest) : 0, height: 10 }))))));
  }

  function drawJobs(counts, jobs) {
    show("jobs-section", counts.length > 0);
    const by = new Map();
    for (const c of counts) {
      if (!by.has(c.executor)) by.set(c.executor, []);
      by.get(c.executor).push(c);
    }
    $("jobcounts").replaceChildren(...[...by].map(([ex, cs]) => hep.el("div", { class: "jobcount" },
      hep.el("b", {}, ex), " " + hep.num(cs.reduce((a, c) => a + c.count, 0)) + " jobs:",
      ...cs.flatMap((c) => [" ", hep.el("span", { class: "pill j-" + c.state }, hep.num(c.count) + " " + c.state)]))));
    $("jobs").replaceChildren(...jobs.map((j) => hep.el("tr", {},
      hep.el("td", { class: "mono" }, j.executor + " " + j.id), hep.el("td", {}, j.state), hep.el("td", {}, j.reason || ""),
      hep.el("td", { class: "num" }, j.actions), hep.el("td", {}, hep.utc(j.updated)))));
  }

  function draw(b) {
    running = b.outcome === "running";
    root.dataset.outcome = b.outcome;
    elapsedNs = b.elapsed_ns;
    elapsedAt = hep.now();
    if (changed("outcome", [b.outcome, b.exit_code])) {
      const o = $("outcome");
      o.className = "badge big b-" + hep.state(b.outcome);
      o.textContent = hep.outcome(b.outcome);
      $("exit").textContent = running ? "—" : String(b.exit_code);
      $("live").hidden = !running;
    }
    if (changed("error", b.error || "")) {
      $("error").textContent = b.error || "";
      $("error").hidden = !b.error;
    }
    if (changed("dropped", b.dropped || 0)) {
      $("dropped-n").textContent = hep.num(b.dropped || 0);
      $("dropped").hidden = !b.dropped;
    }
    if (changed("counts", b.counts)) drawBar(b.counts);
    if (changed("failures", b.failures || [])) drawFailures(b.failures || []);
    if (changed("running", b.running || [])) drawRunning(b.running || []);
    if (changed("critical", b.critical_path || [])) drawCritical(b.critical_path || []);
    if (changed("jobs", [b.job_counts || [], b.jobs || []])) drawJobs(b.job_counts || [], b.jobs || []);
    if (changed("warnings", b.warnings || [])) {
      show("warnings-section", (b.warnings || []).length > 0);
      $("warnings").replaceChildren(...(b.warnings || []).map((w) => hep.el("li", {}, w)));
    }
    if (!running) $("elapsed").textContent = hep.dur(elapsedNs);
    return running;
  }

  function tick() {
    const now = hep.now();
    if (running) $("elapsed").textContent = hep.dur(elapsedNs + (now - elapsedAt) * 1e6);
    for (const td of document.querySelectorAll("#running .tick")) {
      td.textContent = hep.dur((now - Date.parse(td.dataset.start)) * 1e6);
    }
  }

  if (running) {
    setInterval(tick, 1000);
    hep.poll("/builds/" + id + ".json", 1000, draw);
  }
})();
