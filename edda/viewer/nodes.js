// Which node owns what: the nodes of the database with their leases (by the
// database's clock) and partitions, and a grid of every partition coloured by its
// owner, from GET /api/nodes, refreshed every 2 s.
(function () {
  "use strict";
  const V = window.EddaViewer;
  const h = V.h;
  const EVERY_MS = 2000;
  const COLOURS = 8;

  V.pages = V.pages || {};

  /** "0-3, 7, 9-12" for [0, 1, 2, 3, 7, 9, 10, 11, 12]. */
  function ranges(numbers) {
    const parts = [];
    for (let i = 0; i < numbers.length; i++) {
      let j = i;
      while (j + 1 < numbers.length && numbers[j + 1] === numbers[j] + 1) j++;
      parts.push(j > i ? numbers[i] + "\u2013" + numbers[j] : String(numbers[i]));
      i = j;
    }
    return parts.join(", ");
  }

  V.pages.nodes = function (root) {
    const summary = h("p", {id: "nodes-summary", class: "muted"});
    const body = h("tbody", {});
    const grid = h("div", {id: "partition-grid", class: "partition-grid"});
    let shown = "";

    V.fill(root,
      h("div", {class: "page-head"}, h("h1", {}, "Nodes")),
      summary,
      h("section", {class: "panel"},
        h("table", {id: "nodes-table", class: "grid"},
          h("thead", {}, h("tr", {}, h("th", {}, "Node"), h("th", {}, "Host"),
                           h("th", {}, "PID"), h("th", {}, "Lease left"),
                           h("th", {}, "Partitions"))),
          body)),
      h("section", {class: "panel"}, h("h2", {}, "Partitions"), grid));

    async function refresh() {
      const answer = await V.api("GET", "nodes");
      const seen = JSON.stringify(answer);
      if (seen === shown) return;
      shown = seen;
      const colour = new Map(answer.nodes.map((n, i) => [n.node_id, i % COLOURS]));
      const live = answer.nodes.filter((n) => n.alive).length;
      const free = answer.partitions.filter((p) => !p.owner_node).length;
      V.fill(summary, live + " live node" + (live === 1 ? "" : "s") + ", " +
             answer.partition_count + " partitions" + (free ? ", " + free + " not owned" : "") +
             ". This viewer is served by " + answer.node + ".");
      V.fill(body, answer.nodes.map((n) => h("tr", {dataset: {nodeId: n.node_id},
                                                    class: n.alive ? "" : "expired"},
        h("td", {}, h("span", {class: "swatch owner-" + colour.get(n.node_id)}), " ",
          h("span", {class: "mono"}, n.node_id),
          n.this_node ? h("span", {class: "tag"}, "this node") : null,
          n.alive ? null : h("span", {class: "tag bad"}, "lease expired")),
        h("td", {}, n.hostname),
        h("td", {}, String(n.pid)),
        h("td", {}, n.alive ? n.lease_remaining_seconds.toFixed(1) + " s" : "\u2014"),
        h("td", {}, h("span", {class: "count"}, String(n.partitions.length)), " ",
          h("span", {class: "muted"}, ranges(n.partitions))))));
      V.fill(grid, answer.partitions.map((p) => h("div", {
        class: "cell " + (p.owner_node ? "owner-" + (colour.get(p.owner_node) ?? "x") : "free"),
        title: "partition " + p.partition + ": " + (p.owner_node || "not owned") +
               ", epoch " + p.epoch,
        dataset: {partition: p.partition}}, String(p.partition))));
    }

    return {stop: V.poll(refresh, EVERY_MS)};
  };
})();
