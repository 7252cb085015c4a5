// The path an instance took, drawn from its timeline as inline SVG: one box per
// step from top to bottom, shaped by the step's kind and coloured by its outcome.
(function () {
  "use strict";
  const V = window.EddaViewer;
  const NS = "http://www.w3.org/2000/svg";
  const WIDTH = 420, BOX_W = 300, BOX_H = 46, GAP = 24, TOP = 12;
  const X = (WIDTH - BOX_W) / 2;

  /** The outcome class of a step: ok, bad, waiting, undo, off or info. */
  V.outcome = function (step) {
    const status = step.status;
    if (["completed", "fired", "received", "committed", "sent", "subscribed"].includes(status)) {
      return step.kind === "compensation" ? "undo" : "ok";
    }
    if (["failed", "timed_out"].includes(status)) return "bad";
    if (["waiting", "cancelling", "started"].includes(status)) {
      if (step.kind === "compensation") return "undo";
      return status === "waiting" ? "waiting" : "info";
    }
    if (["cancelled", "abandoned", "unsubscribed"].includes(status)) return "off";
    if (step.kind === "compensation") return "undo";
    return "info";
  };

  function svg(tag, attrs, text) {
    const node = document.createElementNS(NS, tag);
    for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function cut(text, max) {
    text = String(text);
    return text.length > max ? text.slice(0, max - 1) + "\u2026" : text;
  }

  /** The outline of a step's box: pill for the workflow's start and end, a hexagon
   *  for a wait, a notched box for a compensation, a rectangle for the rest. */
  function shape(kind, y) {
    const x = X, w = BOX_W, h = BOX_H;
    if (kind === "workflow" || kind === "recur" || kind === "cancel" || kind === "retry") {
      return svg("rect", {x: x, y: y, width: w, height: h, rx: h / 2, ry: h / 2});
    }
    if (["timer", "event", "message", "wait"].includes(kind)) {
      const d = 14;
      const points = [[x + d, y], [x + w - d, y], [x + w, y + h / 2], [x + w - d, y + h],
                      [x + d, y + h], [x, y + h / 2]];
      return svg("polygon", {points: points.map((p) => p.join(",")).join(" ")});
    }
    if (kind === "compensation") {
      const d = 10;
      const points = [[x, y], [x + w - d, y], [x + w, y + d], [x + w, y + h], [x + d, y + h],
                      [x, y + h - d]];
      return svg("polygon", {points: points.map((p) => p.join(",")).join(" ")});
    }
    return svg("rect", {x: x, y: y, width: w, height: h, rx: 6, ry: 6});
  }

  /** An SVG element drawing `steps` (the timeline of one instance). */
  V.diagram = function (steps) {
    const height = TOP * 2 + Math.max(1, steps.length) * (BOX_H + GAP) - GAP;
    const root = svg("svg", {viewBox: "0 0 " + WIDTH + " " + height, width: WIDTH,
                             height: height, role: "img", class: "flow",
                             "aria-label": "the path of this instance, " + steps.length +
                                           " steps"});
    const defs = svg("defs", {});
    const marker = svg("marker", {id: "flow-arrow", viewBox: "0 0 10 10", refX: 9, refY: 5,
                                  markerWidth: 7, markerHeight: 7, orient: "auto"});
    marker.appendChild(svg("path", {d: "M0,0 L10,5 L0,10 z", class: "arrow-head"}));
    defs.appendChild(marker);
    root.appendChild(defs);
    steps.forEach((step, index) => {
      const y = TOP + index * (BOX_H + GAP);
      if (index > 0) {
        root.appendChild(svg("line", {x1: WIDTH / 2, y1: y - GAP + 1, x2: WIDTH / 2, y2: y - 2,
                                      class: "edge", "marker-end": "url(#flow-arrow)"}));
      }
      const group = svg("g", {class: "node outcome-" + V.outcome(step) + " kind-" +
                                     String(step.kind).replace(/[^a-z_]/g, ""),
                              "data-seq": step.seq});
      group.appendChild(svg("title", {}, step.summary || step.name));
      group.appendChild(shape(step.kind, y));
      group.appendChild(svg("text", {x: WIDTH / 2, y: y + 19, class: "label"},
                            cut(step.name || step.kind, 34)));
      let sub = step.kind + " \u00b7 " + String(step.status).replace(/_/g, " ");
      if (step.duration_ms !== null && step.duration_ms !== undefined) {
        sub += " \u00b7 " + V.duration(step.duration_ms);
      }
      group.appendChild(svg("text", {x: WIDTH / 2, y: y + 36, class: "sub"}, cut(sub, 46)));
      if (step.retries && step.retries.length) {
        const bx = X + BOX_W - 4, by = y + 4;
        group.appendChild(svg("circle", {cx: bx, cy: by, r: 11, class: "retry-dot"}));
        group.appendChild(svg("text", {x: bx, y: by + 4, class: "retry-count"},
                              "\u21bb" + step.retries.length));
      }
      root.appendChild(group);
    });
    return root;
  };
})();
