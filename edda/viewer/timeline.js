// An instance's journal as a timeline: one row per step (from
// GET /api/instances/{id}/timeline) with its time, kind, outcome, duration,
// retries, and its details (input, result, event data, error and traceback).
(function () {
  "use strict";
  const V = window.EddaViewer;
  const h = V.h;

  function offset(step, first) {
    if (!step.at || !first) return "";
    const ms = new Date(step.at).getTime() - new Date(first).getTime();
    return isNaN(ms) ? "" : "+" + V.duration(Math.max(0, ms));
  }

  function retries(step) {
    if (!step.retries || !step.retries.length) return null;
    return h("ol", {class: "retries"}, step.retries.map((r) =>
      h("li", {class: "retry"}, h("span", {class: "attempt"}, "attempt " + r.attempt + " failed"),
        ": ", h("code", {}, r.error_type), " ", r.message)));
  }

  function error(detail, open) {
    const e = detail && detail.error;
    if (!e || typeof e !== "object") return null;
    return h("div", {class: "step-error"},
      h("div", {class: "error-line"}, h("strong", {}, e.type || "Error"), ": ", e.message || ""),
      e.traceback ? h("details", {class: "traceback-box", open: open},
                      h("summary", {}, "traceback"),
                      h("pre", {class: "traceback"}, e.traceback)) : null);
  }

  function details(detail, openKeys) {
    if (!detail || typeof detail !== "object") return null;
    const rest = Object.assign({}, detail);
    delete rest.error;
    for (const key of Object.keys(rest)) {
      if (rest[key] === null || rest[key] === undefined) delete rest[key];
    }
    if (!Object.keys(rest).length) return null;
    return h("details", {class: "detail", open: openKeys},
             h("summary", {}, "details"), h("pre", {class: "json"}, V.json(rest)));
  }

  /** The timeline as a list element; `open` (from `openDetails`) says which details
   *  were open before, so a refresh keeps them as the user left them. */
  V.timeline = function (steps, open) {
    const first = steps.length ? steps[0].at : null;
    return h("ol", {class: "timeline"}, steps.map((step) => {
      const outcome = V.outcome(step);
      const meta = [];
      if (step.duration_ms !== null && step.duration_ms !== undefined) {
        meta.push(h("span", {class: "duration", title: "duration"}, V.duration(step.duration_ms)));
      }
      if (step.attempts && step.attempts > 1) {
        meta.push(h("span", {class: "attempts"}, step.attempts + " attempts"));
      }
      return h("li", {class: "step outcome-" + outcome,
                      dataset: {seq: step.seq, kind: step.kind, status: step.status}},
        h("div", {class: "when", title: V.time(step.at)},
          h("div", {class: "clock"}, V.time(step.at).slice(11)),
          h("div", {class: "offset"}, offset(step, first))),
        h("div", {class: "marker"}),
        h("div", {class: "body"},
          h("div", {class: "head"},
            h("span", {class: "kind kind-" + String(step.kind).replace(/[^a-z_]/g, "")},
              step.kind),
            h("span", {class: "name"}, step.name),
            V.badge(step.status, "step-status"),
            meta,
            h("span", {class: "position", title: "position in the journal"},
              step.position ? step.position + " \u00b7 #" + step.seq : "#" + step.seq)),
          h("div", {class: "summary"}, step.summary),
          retries(step),
          // the instance's own error is shown above the timeline, with its traceback
          error(step.detail, open.has("tb:" + step.seq) ? open.get("tb:" + step.seq)
                                                         : outcome === "bad" &&
                                                           step.kind === "activity"),
          details(step.detail, open.get("d:" + step.seq) || false)));
    }));
  };

  /** Which details of a rendered timeline are open or closed, by step. */
  V.openDetails = function (root) {
    const open = new Map();
    root.querySelectorAll("li.step").forEach((li) => {
      const seq = li.dataset.seq;
      const tb = li.querySelector("details.traceback-box");
      const detail = li.querySelector("details.detail");
      if (tb) open.set("tb:" + seq, tb.open);
      if (detail) open.set("d:" + seq, detail.open);
    });
    return open;
  };
})();
