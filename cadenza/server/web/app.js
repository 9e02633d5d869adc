// Cadenza's web page: plain script on the JSON API and its event streams (no build step, nothing
// fetched from elsewhere). Pages are switched by the URL's #fragment.
"use strict";

const MEDIA_KINDS = ["audio", "video", "image"];
const FINAL = ["run_finished", "run_interrupted"];
const chat = {node: null};  // the chat's messages outlive a visit to another page

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "text") el.textContent = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) el.append(c);
  return el;
}

function showError(message) {
  const p = document.getElementById("error");
  p.textContent = message;
  p.hidden = !message;
}

async function api(path, options = {}) {
  const r = await fetch(path, {credentials: "same-origin", ...options});
  if (r.status === 401) { location.href = "/login"; throw new Error("sign in first"); }
  const body = (r.headers.get("content-type") || "").includes("json") ? await r.json() : await r.text();
  if (!r.ok) throw new Error((body && body.error) || `${r.status} ${r.statusText}`);
  return body;
}

const postJSON = (path, doc) => api(path, {method: "POST", headers: {"Content-Type": "application/json"},
                                           body: JSON.stringify(doc)});

// A name a plan can use for a file: letters, digits and _, not starting with a digit.
function safeName(fileName, taken) {
  let base = fileName.replace(/\.[^.]*$/, "").replace(/[^A-Za-z0-9_]/g, "_").replace(/^_+|_+$/g, "") || "file";
  if (/^\d/.test(base)) base = "f_" + base;
  let name = base, i = 2;
  while (taken.has(name)) name = `${base}_${i++}`;
  taken.add(name);
  return name;
}

const seconds = (s) => (s === undefined || s === null ? "" : `${Number(s).toFixed(2)} s`);
const when = (t) => (t ? new Date(t * 1000).toLocaleString() : "");

// -- a run: its plan, each step's status and time, then its outputs, live from the event stream ------
function runCard(runId) {
  const status = h("span", {class: "status", text: "queued"});
  const steps = h("ol", {class: "steps"});
  const outputs = h("div", {class: "outputs"});
  const answer = h("p", {class: "answer"});
  const card = h("section", {class: "run", "data-run": runId},
    h("div", {class: "run-head"}, h("a", {href: `#run/${runId}`, text: `run ${runId.slice(0, 8)}`}), " ", status),
    steps, answer, outputs);
  const rows = {};

  function row(id, tool) {
    if (!rows[id]) {
      rows[id] = h("li", {class: "step", "data-step": id, "data-status": "waiting"},
        h("code", {class: "step-id", text: id}), " ", h("span", {class: "tool", text: tool || ""}), " ",
        h("span", {class: "args"}), h("span", {class: "step-status", text: "waiting"}), h("span", {class: "time"}),
        h("div", {class: "step-error"}));
      steps.append(rows[id]);
    }
    return rows[id];
  }

  function setStep(e, state) {
    const r = row(e.step, e.tool);
    r.dataset.status = state;
    r.querySelector(".step-status").textContent = state;
    if (e.seconds !== undefined) r.querySelector(".time").textContent = seconds(e.seconds);
    if (e.error) r.querySelector(".step-error").textContent = e.error;
  }

  const source = new EventSource(`/runs/${runId}/events`);
  const handlers = {
    run_queued: () => { status.textContent = "queued"; card.dataset.status = "queued"; },
    planning: () => { status.textContent = "planning…"; },
    execution_started: () => { status.textContent = "running"; card.dataset.status = "running"; },
    plan: (e) => {
      for (const s of e.steps) {
        const r = row(s.id, s.tool);
        r.querySelector(".args").textContent = JSON.stringify(s.args || {});
      }
    },
    step_started: (e) => setStep(e, "running"),
    step_finished: (e) => setStep(e, "done"),
    step_cached: (e) => setStep(e, "cached"),
    step_failed: (e) => setStep(e, "failed"),
    step_skipped: (e) => setStep(e, "skipped"),
  };
  for (const [kind, fn] of Object.entries(handlers)) source.addEventListener(kind, (m) => fn(JSON.parse(m.data)));
  // a dropped connection is retried by the browser (from the last event); a refused one is not
  source.onerror = () => { if (source.readyState === EventSource.CLOSED) status.textContent += " (progress unavailable)"; };
  for (const kind of FINAL) {
    source.addEventListener(kind, async (m) => {
      source.close();
      const e = JSON.parse(m.data);
      status.textContent = e.status + (e.seconds !== undefined ? ` in ${seconds(e.seconds)}` : "");
      try {
        const run = await api(`/runs/${runId}`);
        // the answer's "- name: file" lines are the outputs, shown below as players
        const said = (run.answer || "").split("\n").filter((l) => !l.startsWith("- ")).join(" ");
        answer.textContent = run.error ? `Error: ${run.error}` : said;
        renderOutputs(outputs, run);
      } catch (err) { answer.textContent = err.message; }
      card.dataset.status = e.status;  // set last: a test waits for it, and the outputs are in place
    });
  }
  return card;
}

function mediaElement(file) {
  if (file.kind === "audio") return h("audio", {controls: true, preload: "metadata", src: file.url});
  if (file.kind === "video") return h("video", {controls: true, preload: "metadata", src: file.url});
  if (file.kind === "image") return h("img", {src: file.url, alt: file.name});
  return null;
}

function renderOutputs(box, run) {
  box.replaceChildren();
  for (const [name, value] of Object.entries(run.outputs || {})) {
    const files = Array.isArray(value) ? value : (value.url ? [value] : []);
    const item = h("div", {class: "output", "data-output": name}, h("h4", {text: name}));
    if (!files.length) item.append(h("pre", {text: JSON.stringify(value.value, null, 1)}));
    for (const f of files) {
      item.append(h("div", {class: "file"}, mediaElement(f),
        h("a", {class: "download", href: f.url, download: f.name, text: `download ${f.name}`})));
    }
    box.append(item);
  }
  if (["dub", "dub_audio"].includes(run.workflow) && run.outputs && run.outputs.report) {
    box.append(h("p", {}, h("a", {href: `#review/${run.id}`, text: "Review the dubbed lines →"})));
  }
}

// -- chat -------------------------------------------------------------------------------------------
function chatPage(main) {
  if (!chat.node) chat.node = buildChat();
  main.append(chat.node);
}

function buildChat() {
  const messages = h("div", {class: "messages"});
  const attached = [];  // File objects, recordings included
  const chips = h("div", {class: "chips"});
  const request = h("textarea", {id: "request", rows: 2, placeholder: "Ask for something: “put the music under my voice”"});
  const picker = h("input", {id: "files", type: "file", multiple: true, accept: "audio/*,video/*,image/*",
                             onchange: () => { attached.push(...picker.files); picker.value = ""; drawChips(); }});
  const record = h("button", {type: "button", id: "record", text: "● Record", onclick: toggleRecording});
  const send = h("button", {type: "submit", id: "send", text: "Send"});
  let recorder = null;

  function drawChips() {
    chips.replaceChildren(...attached.map((f, i) => h("span", {class: "chip"}, f.name, " ",
      h("button", {type: "button", title: "remove", text: "×",
                   onclick: () => { attached.splice(i, 1); drawChips(); }}))));
  }

  async function toggleRecording() {
    if (recorder) { recorder.stop(); return; }
    try {
      const stream = await navigator.mediaDevices.getUserMedia({audio: true});
      const parts = [];
      recorder = new MediaRecorder(stream);
      recorder.ondataavailable = (e) => parts.push(e.data);
      recorder.onstop = () => {
        stream.getTracks().forEach((t) => t.stop());
        const type = recorder.mimeType || "audio/webm";
        attached.push(new File(parts, `recording_${attached.length + 1}.webm`, {type}));
        recorder = null;
        record.textContent = "● Record";
        drawChips();
      };
      recorder.start();
      record.textContent = "■ Stop";
    } catch (err) { showError(`microphone: ${err.message}`); }
  }

  async function submit(ev) {
    ev.preventDefault();
    const text = request.value.trim();
    if (!text) return;
    send.disabled = true;
    showError("");
    try {
      const taken = new Set(), files = {}, names = [];
      for (const f of attached) {
        const form = new FormData();
        form.append("file", f, f.name);
        const up = await api("/uploads", {method: "POST", body: form});
        const name = safeName(f.name, taken);
        files[name] = up.id;
        names.push(`${name} (${up.kind})`);
      }
      const run = await postJSON("/runs", {request: text, files});
      messages.append(h("div", {class: "msg user"}, h("p", {text}),
        names.length ? h("p", {class: "attached", text: "files: " + names.join(", ")}) : null));
      messages.append(h("div", {class: "msg cadenza"}, runCard(run.id)));
      request.value = "";
      attached.length = 0;
      drawChips();
    } catch (err) { showError(err.message); } finally { send.disabled = false; }
  }

  const form = h("form", {class: "composer", onsubmit: submit}, request,
    h("div", {class: "row"}, h("label", {class: "attach"}, "Attach audio, images, video ", picker), record, send), chips);
  return h("div", {class: "chat"}, h("h2", {text: "Chat"}), messages, form);
}

// -- workflows: inputs from their declared types ------------------------------------------------------
function inputField(name, spec) {
  const type = spec.type || "text";
  const media = MEDIA_KINDS.find((k) => type === k || type === `list[${k}]`);
  let field;
  if (media) {
    field = h("input", {type: "file", name, accept: `${media}/*`, multiple: type.startsWith("list[")});
  } else if (type === "integer" || type === "number") {
    field = h("input", {type: "number", name, step: type === "integer" ? "1" : "any", value: spec.default ?? ""});
  } else if (type === "boolean") {
    field = h("input", {type: "checkbox", name, checked: spec.default === true});
  } else if (type === "text" && name !== "edits") {
    field = h("input", {type: "text", name, value: spec.default ?? ""});
  } else {
    field = h("textarea", {name, rows: 2, placeholder: type === "text" ? "" : `${type} (JSON)`},
              spec.default !== undefined && spec.default !== null ? JSON.stringify(spec.default) : "");
  }
  field.dataset.type = type;
  return h("label", {class: "field"}, h("span", {class: "name", text: `${name}${spec.required ? " *" : ""}`}),
    h("span", {class: "type", text: type}), field, spec.description ? h("small", {text: spec.description}) : null);
}

async function workflowPage(main) {
  const {workflows} = await api("/workflows");
  const choose = h("select", {id: "workflow"}, h("option", {value: "", text: "— choose a workflow —"}),
    workflows.map((w) => h("option", {value: w.name, text: `${w.name}: ${w.description.split("\n")[0]}`})),
    h("option", {value: "@file", text: "a workflow file of my own…"}));
  const yamlPicker = h("input", {type: "file", id: "workflow-file", accept: ".yaml,.yml,text/yaml", hidden: true});
  const fields = h("div", {class: "fields"});
  const runs = h("div");
  let yamlFile = null;

  function draw(inputs) {
    fields.replaceChildren(...Object.entries(inputs).map(([n, s]) => inputField(n, s)),
      h("button", {type: "submit", id: "run-workflow", text: "Run"}));
  }
  choose.onchange = () => {
    yamlFile = null;
    yamlPicker.hidden = choose.value !== "@file";
    const w = workflows.find((x) => x.name === choose.value);
    if (w) draw(w.inputs); else fields.replaceChildren();
  };
  yamlPicker.onchange = async () => {
    yamlFile = yamlPicker.files[0];
    try {
      const checked = await postJSON("/validate", {workflow_yaml: await yamlFile.text()});
      draw(checked.input_specs);
      showError("");
    } catch (err) { fields.replaceChildren(); showError(err.message); }
  };
  async function submit(ev) {
    ev.preventDefault();
    const form = new FormData();
    if (yamlFile) form.append("workflow_file", yamlFile, "workflow.yaml");
    else form.append("workflow", choose.value);
    for (const el of fields.querySelectorAll("[name]")) {
      if (el.type === "file") for (const f of el.files) form.append(el.name, f, f.name);
      else if (el.type === "checkbox") form.append(el.name, el.checked ? "true" : "false");
      else if (el.value !== "") form.append(el.name, el.value);
    }
    try {
      showError("");
      const run = await api("/runs", {method: "POST", body: form});
      runs.prepend(runCard(run.id));
    } catch (err) { showError(err.message); }
  }
  main.append(h("h2", {text: "Run a workflow"}),
    h("form", {class: "workflow", onsubmit: submit}, choose, yamlPicker, fields), runs);
}

// -- history, one run, tools ---------------------------------------------------------------------------
async function runsPage(main) {
  const {runs, total} = await api("/runs?limit=200");  // the newest 200: a long history stays quick to show
  const rows = runs.map((r) => h("tr", {"data-run": r.id},
    h("td", {}, h("a", {href: `#run/${r.id}`, text: r.id.slice(0, 8)})), h("td", {text: when(r.created_at)}),
    h("td", {text: r.workflow || (r.kind === "request" ? "request" : "workflow file")}),
    h("td", {class: "what", text: r.request || ""}), h("td", {class: `status ${r.status}`, text: r.status}),
    h("td", {}, ["dub", "dub_audio"].includes(r.workflow) && r.status === "succeeded"
      ? h("a", {href: `#review/${r.id}`, text: "review"}) : "")));
  main.append(h("h2", {text: total > runs.length ? `Runs (the newest ${runs.length} of ${total})` : "Runs"}),
    runs.length ? h("table", {class: "runs"},
    h("tr", {}, ["run", "started", "workflow", "request", "status", ""].map((t) => h("th", {text: t}))), rows)
    : h("p", {text: "No runs yet."}));
}

async function runPage(main, runId) {
  const run = await api(`/runs/${runId}`);
  const actions = h("p", {class: "actions"}, h("a", {href: run.links.record, target: "_blank", text: "run.json"}));
  if (["queued", "running"].includes(run.status)) {
    actions.append(" ", h("button", {text: "Cancel", onclick: () => api(`/runs/${runId}/cancel`, {method: "POST"}).then(route, (e) => showError(e.message))}));
  } else if (["interrupted", "failed", "cancelled"].includes(run.status)) {
    actions.append(" ", h("button", {text: "Resume", onclick: () => api(`/runs/${runId}/resume`, {method: "POST"}).then(route, (e) => showError(e.message))}));
  }
  const inputs = Object.entries(run.inputs).map(([n, v]) => h("li", {}, h("code", {text: n}), ": ",
    v && v.file ? h("a", {href: `/runs/${runId}/inputs/${n}`, text: v.file})
      : Array.isArray(v) && v.length && v[0].file ? v.map((x, i) => h("a", {href: `/runs/${runId}/inputs/${n}?index=${i}`, text: x.file + " "}))
      : JSON.stringify(v).slice(0, 200)));
  main.append(h("h2", {text: run.request ? `“${run.request}”` : `Workflow ${run.workflow || "(file)"}`}),
    h("ul", {class: "inputs"}, inputs), actions, runCard(runId));
}

async function toolsPage(main) {
  const {tools} = await api("/tools?backends=true");
  main.append(h("h2", {text: "Tools"}), h("table", {class: "tools"},
    h("tr", {}, ["tool", "signature", "can run here"].map((t) => h("th", {text: t}))),
    tools.map((t) => {
      const ok = t.backends.some((b) => b.available);
      return h("tr", {"data-tool": t.name, "data-available": ok ? "yes" : "no"}, h("td", {}, h("strong", {text: t.name}),
        h("div", {class: "desc", text: t.description.split("\n")[0]})), h("td", {}, h("code", {text: t.signature})),
        h("td", {class: ok ? "ok" : "no"}, t.backends.map((b) => h("div", {text: `${b.available ? "✓" : "✗"} ${b.name}` +
          (b.device && b.device !== "cpu" ? ` (${b.device})` : "") + (b.why_not ? `: ${b.why_not}` : "")}))));
    })));
}

// -- router --------------------------------------------------------------------------------------------
const PAGES = {chat: chatPage, workflow: workflowPage, runs: runsPage, run: runPage, tools: toolsPage,
               review: (main, id) => window.reviewPage(main, id)};

async function route() {
  const [page, arg] = (location.hash.slice(1) || "chat").split("/");
  const main = document.getElementById("main");
  main.replaceChildren();
  showError("");
  for (const a of document.querySelectorAll("nav a[data-page]")) a.classList.toggle("here", a.dataset.page === page);
  try { await (PAGES[page] || chatPage)(main, arg); } catch (err) { showError(err.message); }
}

window.cadenza = {api, postJSON, h, runCard, showError, seconds};
window.addEventListener("hashchange", route);
window.addEventListener("DOMContentLoaded", route);
