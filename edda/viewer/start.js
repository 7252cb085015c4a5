// Starting a workflow: a form built from the workflow's input JSON schema (from
// GET /api/workflows): text, number, checkbox and choice fields for plain values,
// JSON for the rest. It POSTs /api/workflows/{name} and opens the new instance.
(function () {
  "use strict";
  const V = window.EddaViewer;
  const h = V.h;

  V.pages = V.pages || {};

  /** `schema` with a `$ref` resolved against the root's `$defs`. */
  function resolve(schema, root) {
    let seen = 0;
    while (schema && schema.$ref && seen++ < 20) {
      const name = schema.$ref.replace(/^#\/\$defs\//, "");
      const target = (root.$defs || {})[name];
      if (!target) break;
      const rest = Object.assign({}, schema);
      delete rest.$ref;
      schema = Object.assign({}, target, rest);
    }
    return schema || {};
  }

  /** The field's schema without its `null` alternative, and whether null is allowed. */
  function unwrap(schema, root) {
    schema = resolve(schema, root);
    const options = schema.anyOf || schema.oneOf;
    if (Array.isArray(options)) {
      const others = options.filter((o) => o.type !== "null");
      if (others.length === 1 && others.length < options.length) {
        const rest = Object.assign({}, schema);
        delete rest.anyOf;
        delete rest.oneOf;
        return {schema: Object.assign({}, resolve(others[0], root), rest), nullable: true};
      }
    }
    return {schema: schema, nullable: false};
  }

  /** A JSON example of what `schema` takes, for a placeholder. */
  function example(schema, root, depth) {
    schema = unwrap(schema, root).schema;
    if (depth > 3) return null;
    if ("default" in schema) return schema.default;
    if (Array.isArray(schema.enum)) return schema.enum[0];
    switch (schema.type) {
      case "string": return "";
      case "integer": case "number": return 0;
      case "boolean": return false;
      case "array": return [example(schema.items || {}, root, depth + 1)];
      case "object": {
        const value = {};
        for (const [k, v] of Object.entries(schema.properties || {})) {
          value[k] = example(v, root, depth + 1);
        }
        return value;
      }
      default: return null;
    }
  }

  /** One field: its label, its control, and how to read its value. */
  function field(name, property, required, root) {
    const {schema, nullable} = unwrap(property, root);
    const id = "field-" + name.replace(/[^A-Za-z0-9_-]/g, "_");
    const title = schema.title && schema.title !== name ? schema.title : "";
    const label = h("label", {for: id}, name, required ? h("span", {class: "req"}, " *") : null);
    const hint = [schema.description || title, schema.format || "",
                  "default" in schema ? "default " + JSON.stringify(schema.default) : ""]
      .filter(Boolean).join(" \u00b7 ");
    let control, read;
    if (Array.isArray(schema.enum)) {
      control = h("select", {id: id, name: name},
        required ? null : h("option", {value: ""}, "\u2014"),
        schema.enum.map((v, i) => h("option", {value: String(i),
                                               selected: "default" in schema &&
                                                 v === schema.default}, JSON.stringify(v))));
      read = () => control.value === "" ? undefined : schema.enum[Number(control.value)];
    } else if (schema.type === "boolean") {
      control = h("input", {id: id, name: name, type: "checkbox",
                            checked: schema.default === true});
      read = () => control.checked;
    } else if (schema.type === "integer" || schema.type === "number") {
      control = h("input", {id: id, name: name, type: "number",
                            step: schema.type === "integer" ? "1" : "any",
                            required: required,
                            value: typeof schema.default === "number"
                              ? String(schema.default) : null});
      read = () => control.value === "" ? (nullable && required ? null : undefined)
                                        : Number(control.value);
    } else if (schema.type === "string") {
      control = h("input", {id: id, name: name, type: "text", required: required,
                            value: typeof schema.default === "string" ? schema.default : null,
                            placeholder: schema.format === "date-time"
                              ? "2030-01-31T12:00:00Z" : null});
      read = () => control.value === "" && !required ? undefined : control.value;
    } else {
      control = h("textarea", {id: id, name: name, rows: 3, class: "mono",
                               required: required,
                               placeholder: JSON.stringify(example(schema, root, 0))});
      if ("default" in schema) control.value = JSON.stringify(schema.default);
      read = () => {
        if (control.value.trim() === "") return undefined;
        try {
          return JSON.parse(control.value);
        } catch (error) {
          throw new Error(name + " is not JSON: " + error.message);
        }
      };
    }
    return {name: name, read: read,
            node: h("div", {class: "field"}, label, control,
                    hint ? h("div", {class: "hint"}, hint) : null)};
  }

  V.pages.start = function (root, params) {
    const chooser = h("select", {id: "workflow-select", "aria-label": "workflow"});
    const form = h("form", {id: "start-form", class: "panel form"});
    const note = h("p", {class: "muted"});
    let workflows = [];

    V.fill(root,
      h("div", {class: "page-head"},
        h("div", {}, h("a", {href: "#/", class: "back"}, "\u2190 Instances"),
          h("h1", {}, "Start a workflow"))),
      h("div", {class: "toolbar"}, h("label", {for: "workflow-select"}, "Workflow "), chooser),
      note, form);

    function draw() {
      const wf = workflows.find((w) => w.name === chooser.value);
      if (!wf) { V.fill(form); return; }
      history.replaceState(null, "", "#/start?workflow=" + encodeURIComponent(wf.name));
      const schema = wf.input_schema || {type: "object"};
      const required = new Set(schema.required || []);
      const fields = Object.entries(schema.properties || {})
        .map(([name, property]) => field(name, property, required.has(name), schema));
      const extra = schema.additionalProperties
        ? h("textarea", {id: "field-extra", rows: 2, class: "mono", placeholder: "{}"}) : null;
      const submit = h("button", {id: "start-submit", type: "submit"}, "Start " + wf.name);
      V.fill(note, wf.event_handler
        ? "This workflow also starts for CloudEvents of type " + wf.name + "." : "");
      V.fill(form,
        fields.length ? fields.map((f) => f.node)
                      : h("p", {class: "muted"}, "This workflow takes no input."),
        extra ? h("div", {class: "field"},
                  h("label", {for: "field-extra"}, "More arguments (a JSON object)"), extra)
              : null,
        h("div", {class: "form-actions"}, submit));
      form.onsubmit = async (event) => {
        event.preventDefault();
        let body = {};
        try {
          if (extra && extra.value.trim()) body = JSON.parse(extra.value);
          for (const f of fields) {
            const value = f.read();
            if (value !== undefined) body[f.name] = value;
          }
        } catch (error) {
          V.notice(error.message, "error");
          return;
        }
        submit.disabled = true;
        try {
          const started = await V.api("POST", "workflows/" + encodeURIComponent(wf.name), body);
          V.notice("Started " + started.instance_id, "info", true);
          location.hash = V.instanceLink(started.instance_id);
        } catch (error) {
          V.notice(error.message, "error");
        } finally {
          submit.disabled = false;
        }
      };
    }

    chooser.addEventListener("change", () => { V.notice(""); draw(); });
    V.api("GET", "workflows").then((answer) => {
      workflows = answer.workflows.slice().sort((a, b) => a.name.localeCompare(b.name));
      const wanted = params.get("workflow");
      V.fill(chooser, workflows.map((w) => h("option", {value: w.name,
                                                        selected: w.name === wanted}, w.name)));
      if (!workflows.length) V.fill(note, "No workflow is registered on this node.");
      draw();
    }).catch(V.report);
    return {stop: () => {}};
  };
})();
