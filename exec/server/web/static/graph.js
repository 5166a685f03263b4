// The graph page: hovering a box highlights its edges, and while the build
// runs the boxes' colours, counts and strips follow /builds/ID/graph.json
// (an api.GraphView of the same path) every second. The layout is the
// server's; when the set of boxes changes, the page offers a reload
// rather than moving boxes under the reader's pointer.
"use strict";

(() => {
  const root = document.getElementById("graph-page");
  const graph = document.getElementById("graph");
  if (!root || !graph) return;
  const id = root.dataset.id;
  const path = root.dataset.path;

  const nodes = new Map();
  for (const g of graph.querySelectorAll("g.node")) nodes.set(g.dataset.path, g);
  const edges = [...graph.querySelectorAll("path.edge")];

  for (const [p, g] of nodes) {
    g.addEventListener("mouseenter", () => {
      graph.classList.add("focus");
      g.classList.add("hl");
      for (const e of edges) if (e.dataset.from === p || e.dataset.to === p) e.classList.add("hl");
    });
    g.addEventListener("mouseleave", () => {
      graph.classList.remove("focus");
      g.classList.remove("hl");
      for (const e of graph.querySelectorAll("path.edge.hl")) e.classList.remove("hl");
    });
  }

  function summary(c) {
    let s = hep.num(c.total) + (c.total === 1 ? " action" : " actions");
    if (c.failed > 0) s += " · " + hep.num(c.failed) + " failed";
    else if (c.running > 0) s += " · " + hep.num(c.running) + " running";
    else if (c.waiting > 0) s += " · " + hep.num(c.waiting) + " waiting";
    return s;
  }

  const last = new Map();
  function update(view) {
    const seen = new Set();
    let grown = false;
    for (const n of view.nodes || []) {
      seen.add(n.path);
      const g = nodes.get(n.path);
      if (!g) {
        grown = true;
        continue;
      }
      const s = JSON.stringify([n.state, n.counts]);
      if (last.get(n.path) === s) continue;
      last.set(n.path, s);
      for (const c of [...g.classList]) if (c.startsWith("s-")) g.classList.remove(c);
      g.classList.add("s-" + hep.state(n.state));
      g.querySelector("text.summary").textContent = summary(n.counts);
      const strip = g.querySelector("g.strip");
      const w = Number(g.querySelector("rect.box").getAttribute("width"));
      strip.replaceChildren(...hep.segments(n.counts, w).map((s) =>
        hep.svg("rect", { class: "s-" + s.cls, x: s.x, width: s.w, height: 5 })));
    }
    if (grown || seen.size !== nodes.size) document.getElementById("graph-changed").hidden = false;
  }

  if (root.dataset.outcome !== "running") return;
  // The graph's JSON does not carry the build's outcome: ask for it every
  // few seconds, and stop when the build has ended.
  let polls = 0;
  let running = true;
  hep.poll("/builds/" + id + "/graph.json?path=" + encodeURIComponent(path), 1000, (view) => {
    update(view);
    if (++polls % 5 === 0) {
      fetch("/builds/" + id + ".json", { cache: "no-store" }).then((r) => r.json()).then((b) => {
        if (b.outcome !== "running") {
          running = false;
          const o = document.getElementById("outcome");
          o.className = "badge big b-" + hep.state(b.outcome);
          o.textContent = hep.outcome(b.outcome);
        }
      }).catch(() => {});
    }
    return running;
  });
})();
