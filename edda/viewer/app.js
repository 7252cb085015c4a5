// The viewer's frame and router: a header with the pages (instances, start,
// nodes), a notice bar, and the page the address names (#/, #/instances/{id},
// #/start, #/nodes). Changing page stops the previous page's refreshing.
(function () {
  "use strict";
  const V = window.EddaViewer;
  const h = V.h;
  let current = null;

  const ROUTES = [
    [/^\/?$/, (root, params) => V.pages.list(root, params), "list"],
    [/^\/instances\/(.+)$/, (root, params, id) => V.pages.instance(root, params,
                                                                    decodeURIComponent(id)),
     "list"],
    [/^\/start\/?$/, (root, params) => V.pages.start(root, params), "start"],
    [/^\/nodes\/?$/, (root, params) => V.pages.nodes(root, params), "nodes"],
  ];

  function frame() {
    const app = document.getElementById("app");
    const signOut = sessionStorage.getItem(V.tokenKey)
      ? h("button", {id: "sign-out", type: "button", class: "link",
                     onclick: () => { sessionStorage.removeItem(V.tokenKey); location.reload(); }},
          "Sign out")
      : null;
    V.fill(app,
      h("header", {class: "top"},
        h("a", {href: "#/", class: "brand"}, "Edda"),
        h("nav", {},
          h("a", {href: "#/", id: "nav-list"}, "Instances"),
          h("a", {href: "#/start", id: "nav-start"}, "Start"),
          h("a", {href: "#/nodes", id: "nav-nodes"}, "Nodes")),
        h("span", {class: "spacer"}),
        h("span", {id: "live", class: "live on", title: "connected; refreshing"}),
        signOut),
      h("div", {id: "notice", class: "notice", hidden: true}),
      h("main", {id: "page"}));
  }

  function route() {
    if (current) current.stop();
    current = null;
    V.stopAll();
    const bar = document.getElementById("notice");
    if (bar && bar.dataset.keep) bar.dataset.keep = "";
    else V.notice("");
    const {path, params} = V.location();
    const page = document.getElementById("page");
    for (const [pattern, open, nav] of ROUTES) {
      const match = pattern.exec(path);
      if (!match) continue;
      document.querySelectorAll("header nav a").forEach((a) => {
        a.classList.toggle("current", a.id === "nav-" + nav);
      });
      current = open(page, params, match[1]);
      return;
    }
    V.fill(page, h("h1", {}, "Nothing here"), h("a", {href: "#/"}, "\u2190 Instances"));
  }

  /** Draw the viewer (again, after a token was entered). */
  V.start = function () {
    document.getElementById("app").hidden = false;
    frame();
    route();
  };

  window.addEventListener("hashchange", route);
  V.start();
})();
