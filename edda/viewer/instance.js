// One instance: its status and actions (cancel, retry), input, result or error
// with its traceback, the diagram of its path and its timeline, refreshed every
// 1.5 s (a part is drawn again only when its data changed).
(function () {
  "use strict";
  const V = window.EddaViewer;
  const h = V.h;
  const EVERY_MS = 1500;

  V.pages = V.pages || {};

  V.pages.instance = function (root, params, id) {
    const path = "instances/" + encodeURIComponent(id);
    const shown = {instance: "", timeline: ""};
    const status = h("span", {id: "instance-status"});
    const actions = h("div", {id: "actions", class: "actions"});
    const facts = h("dl", {id: "facts", class: "facts"});
    const problem = h("section", {id: "error", class: "panel error-panel", hidden: true});
    const result = h("section", {id: "result", class: "panel", hidden: true});
    const input = h("section", {id: "input", class: "panel"});
    const diagram = h("div", {id: "diagram", class: "diagram"});
    const timeline = h("div", {id: "timeline"});

    V.fill(root,
      h("div", {class: "page-head"},
        h("div", {}, h("a", {href: "#/", class: "back"}, "\u2190 Instances"),
          h("h1", {class: "mono", id: "instance-id"}, id)),
        h("div", {class: "head-side"}, status, actions)),
      facts, problem, result, input,
      h("div", {class: "columns"},
        h("section", {class: "panel"}, h("h2", {}, "Path"), diagram),
        h("section", {class: "panel grow"}, h("h2", {}, "Timeline"), timeline)));

    async function act(what, verb) {
      try {
        await V.api("POST", path + "/" + what);
        V.notice(verb, "info");
      } catch (error) {
        V.notice((error.body && error.body.reason) || error.message, "error");
      }
      await refresh().catch(V.report);
    }

    function drawActions(instance) {
      const finished = V.FINISHED.includes(instance.status);
      const buttons = [];
      if (!finished) {
        const confirm = h("span", {id: "cancel-confirm", class: "confirm", hidden: true},
          "Cancel this instance? ",
          h("button", {id: "cancel-yes", type: "button", class: "danger",
                       onclick: () => act("cancel", "Cancel committed; compensations run " +
                                                   "and the instance ends cancelled.")},
            "Yes, cancel it"),
          h("button", {type: "button", class: "secondary",
                       onclick: () => { confirm.hidden = true; cancel.hidden = false; }},
            "Keep it"));
        const cancel = h("button", {id: "cancel", type: "button", class: "danger",
                                    onclick: () => { confirm.hidden = false;
                                                     cancel.hidden = true; }}, "Cancel");
        buttons.push(cancel, confirm);
      }
      if (instance.status === "failed") {
        buttons.push(h("button", {id: "retry", type: "button",
                                  onclick: () => act("retry", "Retry accepted; the instance " +
                                                              "runs again from its last " +
                                                              "good step.")}, "Retry"));
      }
      V.fill(actions, buttons);
    }

    function fact(name, value) {
      return value === null || value === undefined || value === "" ? null
        : h("div", {class: "fact"}, h("dt", {}, name), h("dd", {}, value));
    }

    function drawInstance(instance) {
      V.fill(status, V.badge(instance.status));
      drawActions(instance);
      V.fill(facts,
        fact("Workflow", instance.workflow_name),
        fact("Started", V.time(instance.started_at)),
        fact("Updated", V.time(instance.updated_at)),
        fact("Run by", instance.locked_by),
        fact("Epoch", instance.epoch),
        fact("Current step", instance.current_activity_id),
        fact("Continued from", instance.continued_from
          ? h("a", {href: V.instanceLink(instance.continued_from), class: "mono"},
              instance.continued_from) : null));
      V.fill(input, h("h2", {}, "Input"), h("pre", {class: "json"}, V.json(instance.input_data)));
      const output = instance.output_data || {};
      problem.hidden = !["failed", "cancelled"].includes(instance.status);
      if (instance.status === "failed") {
        V.fill(problem, h("h2", {}, "Error"),
          h("div", {class: "error-line"}, h("strong", {class: "error-type"},
                                            output.error_type || "Error"),
            ": ", h("span", {class: "error-message"}, output.error_message || "")),
          output.stack_trace ? h("pre", {class: "traceback"}, output.stack_trace) : null);
      } else if (instance.status === "cancelled") {
        V.fill(problem, h("h2", {}, "Cancelled"), h("pre", {class: "json"}, V.json(output)));
      }
      result.hidden = instance.status !== "completed";
      if (instance.status === "completed") {
        V.fill(result, h("h2", {}, "Result"), h("pre", {class: "json"}, V.json(output.result)));
      }
    }

    function drawTimeline(steps) {
      const open = V.openDetails(timeline);
      V.fill(diagram, V.diagram(steps));
      V.fill(timeline, V.timeline(steps, open));
    }

    async function refresh() {
      let instance, steps;
      try {
        [instance, steps] = await Promise.all([V.api("GET", path),
                                               V.api("GET", path + "/timeline")]);
      } catch (error) {
        if (error.status === 404) {
          V.fill(root, h("div", {class: "page-head"}, h("h1", {}, "No such instance")),
                 h("p", {class: "mono"}, id), h("a", {href: "#/"}, "\u2190 Instances"));
          stop();
          return;
        }
        throw error;
      }
      const seenInstance = JSON.stringify(instance);
      if (seenInstance !== shown.instance) {
        shown.instance = seenInstance;
        drawInstance(instance);
      }
      const seenSteps = JSON.stringify(steps.timeline);
      if (seenSteps !== shown.timeline) {
        shown.timeline = seenSteps;
        drawTimeline(steps.timeline);
      }
    }

    const stop = V.poll(refresh, EVERY_MS);
    return {stop: stop};
  };
})();
