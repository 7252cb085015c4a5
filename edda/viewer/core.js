// The viewer's plumbing: calls to the JSON API (with the token), building DOM
// nodes without innerHTML, formatting, and polling that never overlaps itself.
(function () {
  "use strict";
  const V = window.EddaViewer;

  V.STATUSES = ["running", "waiting_for_event", "waiting_for_timer", "waiting_for_message",
                "compensating", "completed", "failed", "cancelled", "recurred"];
  V.FINISHED = ["completed", "failed", "cancelled", "recurred"];

  class ApiError extends Error {
    constructor(status, body) {
      super((body && body.error) || (status ? "HTTP " + status : "the node cannot be reached"));
      this.status = status;
      this.body = body;
    }
  }
  V.ApiError = ApiError;

  /** Call the JSON API: `api("GET", "instances?status=failed")`. */
  V.api = async function (method, path, body) {
    const headers = Object.assign({Accept: "application/json"}, V.authHeader());
    const init = {method: method, headers: headers, cache: "no-store"};
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(V.apiBase + path, init);
    } catch (error) {
      V.setOnline(false);
      throw new ApiError(0, null);
    }
    V.setOnline(true);
    let data = null;
    try { data = await response.json(); } catch (error) { data = null; }
    if (response.status === 401) {
      V.stopAll();
      V.gate("That token was refused; enter it again.");
    }
    if (!response.ok) throw new ApiError(response.status, data);
    return data;
  };

  /** `h("a", {href: "#/", class: "x", onclick: f}, "text", child)`: a DOM element. */
  V.h = function (tag, attrs) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else if (key === "dataset") Object.assign(node.dataset, value);
      else if (key in node && key !== "list" && typeof value !== "string") node[key] = value;
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (let i = 2; i < arguments.length; i++) V.append(node, arguments[i]);
    return node;
  };

  V.append = function (node, child) {
    if (child === null || child === undefined || child === false) return;
    if (Array.isArray(child)) { child.forEach((c) => V.append(node, c)); return; }
    node.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
  };

  /** Replace the children of `node`. */
  V.fill = function (node) {
    node.replaceChildren();
    for (let i = 1; i < arguments.length; i++) V.append(node, arguments[i]);
    return node;
  };

  V.badge = function (status, extra) {
    return V.h("span", {class: "badge status-" + String(status).replace(/[^a-z_]/g, "") +
                               (extra ? " " + extra : "")}, String(status).replace(/_/g, " "));
  };

  V.json = function (value) {
    return JSON.stringify(value, null, 2);
  };

  V.time = function (iso) {
    if (!iso) return "";
    const date = new Date(iso);
    if (isNaN(date)) return String(iso);
    const pad = (n, w) => String(n).padStart(w || 2, "0");
    return date.getFullYear() + "-" + pad(date.getMonth() + 1) + "-" + pad(date.getDate()) + " " +
           pad(date.getHours()) + ":" + pad(date.getMinutes()) + ":" + pad(date.getSeconds()) +
           "." + pad(date.getMilliseconds(), 3);
  };

  V.ago = function (iso) {
    if (!iso) return "";
    const seconds = (Date.now() - new Date(iso).getTime()) / 1000;
    if (seconds < 60) return Math.max(0, Math.round(seconds)) + " s ago";
    if (seconds < 3600) return Math.round(seconds / 60) + " min ago";
    if (seconds < 86400) return Math.round(seconds / 3600) + " h ago";
    return Math.round(seconds / 86400) + " d ago";
  };

  V.duration = function (ms) {
    if (ms === null || ms === undefined) return "";
    if (ms < 1000) return Math.round(ms) + " ms";
    const s = ms / 1000;
    if (s < 60) return s.toFixed(1) + " s";
    const m = Math.floor(s / 60);
    if (m < 60) return m + " m " + String(Math.round(s % 60)).padStart(2, "0") + " s";
    const hours = Math.floor(m / 60);
    if (hours < 24) return hours + " h " + String(m % 60).padStart(2, "0") + " m";
    return Math.floor(hours / 24) + " d " + (hours % 24) + " h";
  };

  /** "#/instances/x" for instance x. */
  V.instanceLink = function (id) {
    return "#/instances/" + encodeURIComponent(id);
  };

  /** The current hash as a path and its query parameters. */
  V.location = function () {
    const hash = location.hash.replace(/^#/, "") || "/";
    const at = hash.indexOf("?");
    return {path: at < 0 ? hash : hash.slice(0, at),
            params: new URLSearchParams(at < 0 ? "" : hash.slice(at + 1))};
  };

  // -- polling ------------------------------------------------------------------------

  const pollers = new Set();

  /** Run `task` now and then every `ms` after it finished; returns a stop function. */
  V.poll = function (task, ms) {
    const poller = {stopped: false, timer: null};
    const tick = async () => {
      if (poller.stopped) return;
      if (!document.hidden) {
        try { await task(); } catch (error) { V.report(error); }
      }
      if (!poller.stopped) poller.timer = setTimeout(tick, ms);
    };
    pollers.add(poller);
    tick();
    return () => {
      poller.stopped = true;
      clearTimeout(poller.timer);
      pollers.delete(poller);
    };
  };

  V.stopAll = function () {
    for (const poller of pollers) { poller.stopped = true; clearTimeout(poller.timer); }
    pollers.clear();
  };

  /** Show an error in the page's notice bar (401s are the gate's). */
  V.report = function (error) {
    if (error instanceof ApiError && error.status === 401) return;
    V.notice(error.message || String(error), "error");
  };

  /** Say `text` in the notice bar; with `keep`, it stays through the next page change. */
  V.notice = function (text, kind, keep) {
    const bar = document.getElementById("notice");
    if (!bar) return;
    V.fill(bar, text);
    bar.className = "notice " + (kind || "info");
    bar.hidden = !text;
    bar.dataset.keep = keep ? "1" : "";
  };

  V.setOnline = function (online) {
    const dot = document.getElementById("live");
    if (!dot) return;
    dot.className = online ? "live on" : "live off";
    dot.title = online ? "connected; refreshing" : "the node cannot be reached";
  };
})();
