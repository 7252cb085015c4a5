// The instance list: search, status and workflow filters (kept in the address, so
// a reload or the back button keeps them), pages by the API's page_token, and a
// refresh every 1.5 s of the page in view with the same filters.
(function () {
  "use strict";
  const V = window.EddaViewer;
  const h = V.h;
  const PAGE_SIZE = 20;
  const EVERY_MS = 1500;

  V.pages = V.pages || {};

  V.pages.list = function (root, params) {
    const state = {
      q: params.get("q") || "",
      status: params.get("status") || "",
      workflow: params.get("workflow") || "",
      tokens: [null],  // the page_token of each page seen so far; the last is in view
      next: null,
      shown: "",
    };

    const search = h("input", {id: "search", type: "search", value: state.q,
                               placeholder: "Search ids and workflow names",
                               "aria-label": "search"});
    const status = h("select", {id: "status-filter", "aria-label": "status"},
      h("option", {value: ""}, "any status"),
      V.STATUSES.map((s) => h("option", {value: s, selected: s === state.status},
                              s.replace(/_/g, " "))));
    const workflow = h("select", {id: "workflow-filter", "aria-label": "workflow"},
      h("option", {value: ""}, "any workflow"));
    const body = h("tbody", {});
    const table = h("table", {id: "instances", class: "grid"},
      h("thead", {}, h("tr", {},
        h("th", {}, "Instance"), h("th", {}, "Workflow"), h("th", {}, "Status"),
        h("th", {}, "Started"), h("th", {}, "Updated"))),
      body);
    const empty = h("p", {id: "no-instances", class: "empty", hidden: true},
                    "No instances match.");
    const newer = h("button", {id: "newer", type: "button", class: "secondary",
                               onclick: () => turn(-1)}, "\u2190 Newer");
    const older = h("button", {id: "older", type: "button", class: "secondary",
                               onclick: () => turn(1)}, "Older \u2192");
    const label = h("span", {id: "page-label", class: "muted"}, "");

    V.fill(root,
      h("div", {class: "page-head"}, h("h1", {}, "Instances"),
        h("a", {href: "#/start", class: "button"}, "Start a workflow")),
      h("div", {class: "toolbar"}, search, status, workflow,
        h("button", {type: "button", class: "secondary", id: "clear-filters",
                     onclick: clear}, "Clear")),
      table, empty,
      h("div", {class: "pager"}, newer, label, older));

    function keep() {
      // the filters live in the address without making a history entry per key
      const query = new URLSearchParams();
      if (state.q) query.set("q", state.q);
      if (state.status) query.set("status", state.status);
      if (state.workflow) query.set("workflow", state.workflow);
      const text = query.toString();
      history.replaceState(null, "", "#/" + (text ? "?" + text : ""));
    }

    function changed() {
      state.q = search.value.trim();
      state.status = status.value;
      state.workflow = workflow.value;
      state.tokens = [null];
      keep();
      refresh().catch(V.report);
    }

    function clear() {
      search.value = "";
      status.value = "";
      workflow.value = "";
      changed();
    }

    function turn(direction) {
      if (direction > 0 && state.next) state.tokens.push(state.next);
      else if (direction < 0 && state.tokens.length > 1) state.tokens.pop();
      else return;
      refresh().catch(V.report);
    }

    let typing = null;
    search.addEventListener("input", () => {
      clearTimeout(typing);
      typing = setTimeout(changed, 250);
    });
    status.addEventListener("change", changed);
    workflow.addEventListener("change", changed);

    function row(instance) {
      return h("tr", {dataset: {instanceId: instance.instance_id, status: instance.status}},
        h("td", {}, h("a", {href: V.instanceLink(instance.instance_id), class: "mono"},
                      instance.instance_id)),
        h("td", {class: "workflow"}, instance.workflow_name),
        h("td", {}, V.badge(instance.status)),
        h("td", {title: V.time(instance.started_at)}, V.time(instance.started_at)),
        h("td", {title: V.time(instance.updated_at)}, V.ago(instance.updated_at)));
    }

    /** The API query of the page in view, with the filters as they are now. */
    function wanted() {
      const query = new URLSearchParams({limit: String(PAGE_SIZE)});
      if (state.q) query.set("search", state.q);
      if (state.status) query.set("status", state.status);
      if (state.workflow) query.set("workflow_name", state.workflow);
      const token = state.tokens[state.tokens.length - 1];
      if (token) query.set("page_token", token);
      return query.toString();
    }

    async function refresh() {
      const asked = wanted();
      let page;
      try {
        page = await V.api("GET", "instances?" + asked);
      } catch (error) {
        if (error.status === 400) { V.notice(error.message, "error"); return; }
        throw error;
      }
      if (wanted() !== asked) return;  // the filters changed while it was on its way
      V.notice("");
      state.next = page.has_more ? page.next_page_token : null;
      const seen = JSON.stringify(page.instances);
      if (seen !== state.shown) {
        state.shown = seen;
        V.fill(body, page.instances.map(row));
      } else {
        // the "updated" column is relative to now
        body.querySelectorAll("tr").forEach((tr, i) => {
          tr.lastChild.textContent = V.ago(page.instances[i].updated_at);
        });
      }
      table.hidden = !page.instances.length;
      empty.hidden = !!page.instances.length;
      newer.disabled = state.tokens.length <= 1;
      older.disabled = !state.next;
      label.textContent = "page " + state.tokens.length;
    }

    async function workflows() {
      const answer = await V.api("GET", "workflows");
      const names = answer.workflows.map((w) => w.name).sort();
      if (state.workflow && !names.includes(state.workflow)) names.unshift(state.workflow);
      V.fill(workflow, h("option", {value: ""}, "any workflow"),
             names.map((n) => h("option", {value: n, selected: n === state.workflow}, n)));
    }

    workflows().catch(V.report);
    return {stop: V.poll(refresh, EVERY_MS)};
  };
})();
