/* missionwatch risk console: the missions overview, a mission's page and the review queue.
   Reads the console's JSON API only; live through /api/events (server-sent events). */
"use strict";

const KEY = "missionwatch-token";
const state = { token: sessionStorage.getItem(KEY), reviewer: null, csrf: null };

/* ---------- small helpers ---------- */
function el(tag, attrs, ...kids) {
  const n = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") n.className = v;
    else if (k.startsWith("on")) n.addEventListener(k.slice(2), v);
    else n.setAttribute(k, v === true ? "" : v);
  }
  for (const kid of kids.flat()) {
    if (kid === null || kid === undefined || kid === false) continue;
    n.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return n;
}
const $ = (sel) => document.querySelector(sel);
/* replaceChildren without the "null" a left-out part would print */
const fill = (node, ...kids) => node.replaceChildren(...kids.flat().filter((k) => k !== null && k !== undefined && k !== false));
const when = (t) => (t ? String(t).replace("T", " ").replace(/(:\d\d)(\.\d+)?Z$/, "$1 UTC") : "–");
const num = (x, d = 3) => (x === null || x === undefined ? "–" : typeof x === "number" ? (Number.isInteger(x) ? x.toLocaleString("en") : x.toFixed(d)) : String(x));
const STATE_WORDS = { running: "running", needs_review: "needs review", paused: "paused", terminated: "terminated" };
const badge = (s) => el("span", { class: `badge ${s}` }, STATE_WORDS[s] || s);
const words = (m) => String(m).replace(/_/g, " ");

function toast(text, bad) {
  const t = el("div", { class: "toast" + (bad ? " bad" : ""), role: "status" }, text);
  document.body.append(t);
  setTimeout(() => t.remove(), bad ? 9000 : 5000);
}

async function api(path, opts = {}) {
  const headers = Object.assign({}, opts.headers || {});
  if (state.token) headers.Authorization = "Bearer " + state.token;
  const r = await fetch(path, Object.assign({}, opts, { headers }));
  let body = null;
  try { body = await r.json(); } catch (e) { body = { error: `HTTP ${r.status}` }; }
  return { status: r.status, body };
}

/* ---------- header, sign-in, live events ---------- */
function header(page) {
  const h = $("header.top");
  const link = (href, text, p) => el("a", { href, class: page === p ? "here" : null }, text);
  const who = el("span", { class: "who", id: "who" });
  const live = el("span", { class: "live off", id: "live", title: "live updates" }, "● offline");
  fill(h, el("span", { class: "brand" }, "missionwatch"),
    el("nav", {}, link("/", "Missions", "missions"), link("/queue", "Review queue", "queue")),
    el("span", { class: "spacer" }), live, who);
  showWho();
}

function showWho() {
  const who = $("#who");
  if (!who) return;
  if (state.reviewer) {
    fill(who, `Reviewing as ${state.reviewer} `, el("button", { onclick: signOut }, "Sign out"));
  } else {
    fill(who, el("button", { id: "sign-in", onclick: signIn }, "Sign in to review"));
  }
}

async function openSession() {
  if (!state.token) return false;
  const r = await api("/api/session");
  if (r.status !== 200) return false;
  state.reviewer = r.body.reviewer;
  state.csrf = r.body.csrf;
  return true;
}

async function signIn() {
  const token = window.prompt("Reviewer token");
  if (!token) return;
  const before = state.token;
  state.token = token.trim();
  if (await openSession()) {
    sessionStorage.setItem(KEY, state.token);
    showWho();
    toast(`Signed in as ${state.reviewer}`);
    refresh();
  } else {
    state.token = before;
    toast("That is not a reviewer token of this console.", true);
  }
}

function signOut() {
  sessionStorage.removeItem(KEY);
  Object.assign(state, { token: null, reviewer: null, csrf: null });
  showWho();
  refresh();
}

let refreshing = null;
let refresh = () => {};
/* a redraw keeps what a reviewer was typing */
function keepingNotes(draw) {
  return async () => {
    const notes = new Map();
    document.querySelectorAll("[data-note-for]").forEach((t) => { if (t.value) notes.set(t.dataset.noteFor, t.value); });
    const focused = document.activeElement && document.activeElement.dataset ? document.activeElement.dataset.noteFor : null;
    await draw();
    document.querySelectorAll("[data-note-for]").forEach((t) => {
      if (notes.has(t.dataset.noteFor)) t.value = notes.get(t.dataset.noteFor);
      if (focused && t.dataset.noteFor === focused) t.focus();
    });
  };
}
function scheduleRefresh() {
  if (refreshing) return;
  refreshing = setTimeout(() => { refreshing = null; refresh(); }, 150);
}

function liveEvents(onEvent) {
  const q = state.token ? "?token=" + encodeURIComponent(state.token) : "";
  const es = new EventSource("/api/events" + q);
  const mark = (on) => { const l = $("#live"); if (l) { l.className = "live" + (on ? "" : " off"); l.textContent = on ? "● live" : "● reconnecting"; } };
  es.addEventListener("hello", () => mark(true));
  es.addEventListener("resync", scheduleRefresh);
  for (const kind of ["escalation", "receipt", "control", "review", "review_refused"]) {
    es.addEventListener(kind, (m) => { mark(true); onEvent(kind, JSON.parse(m.data)); });
  }
  es.onerror = () => mark(false);
  return es;
}

function needToken(main, status) {
  fill(main, el("div", { class: "empty" },
    status === 401 ? "This console needs a token to view. " : `The console answered ${status}. `,
    el("button", { onclick: signIn }, "Enter a token")));
}

/* ---------- reviews ---------- */
async function review(missionId, decision, escalationId, note) {
  if (!state.reviewer) { toast("Sign in with a reviewer token first.", true); return null; }
  const body = { decision, note: note || undefined, escalation_id: escalationId || undefined };
  const r = await api(`/api/missions/${encodeURIComponent(missionId)}/reviews`, {
    method: "POST", body: JSON.stringify(body),
    headers: { "Content-Type": "application/json", "X-CSRF-Token": state.csrf || "" },
  });
  const ra = r.body && r.body.resume_approvals;
  if (r.status === 200 && decision === "resume" && ra) toast(`Your approval is recorded (${ra.approvals.length} of ${ra.needed}): ${missionId} stays paused until another reviewer resumes it`);
  else if (r.status === 200) toast(`${words(decision)} accepted: ${missionId} is ${r.body.state || "updated"}`);
  else if (r.status === 202) toast(`${words(decision)} sent; the monitor has not answered yet`);
  else toast(`Refused: ${r.body.reason || r.body.error || r.status}`, true);
  scheduleRefresh();
  return r;
}

function reviewForm(missionId, esc, controlState) {
  const note = el("textarea", { placeholder: "Note for the record (why)", "aria-label": "review note",
    "data-note-for": `${missionId}/${esc ? esc.escalation_id : ""}` });
  const go = (decision) => async (ev) => {
    ev.target.disabled = true;
    await review(missionId, decision, esc ? esc.escalation_id : null, note.value);
    ev.target.disabled = false;
  };
  const buttons = [];
  if (esc) buttons.push(el("button", { onclick: go("acknowledge"), "data-decision": "acknowledge" }, "Acknowledge"));
  if (esc && (esc.open || controlState === "paused"))
    buttons.push(el("button", { class: "primary", onclick: go("resume"), "data-decision": "resume" }, "Resume"));
  if (controlState === "running") buttons.push(el("button", { class: "warn", onclick: go("pause"), "data-decision": "pause" }, "Pause"));
  if (controlState !== "terminated") buttons.push(el("button", { onclick: go("terminate"), "data-decision": "terminate" }, "Terminate"));
  return el("div", { class: "review-form" }, note, el("div", { class: "actions" }, buttons,
    state.reviewer ? null : el("span", { class: "muted" }, "Sign in to review.")));
}

function evidenceFacts(ev) {
  const skip = new Set(["related", "alarmed", "cohort_sizes", "threshold"]);
  const rows = [];
  for (const [k, v] of Object.entries(ev || {})) {
    if (skip.has(k) || (typeof v === "object" && v !== null && !Array.isArray(v))) continue;
    rows.push(el("dt", {}, words(k)), el("dd", {}, Array.isArray(v) ? `[${v.map((x) => num(x)).join(", ")}]` : num(v)));
  }
  if (ev && ev.threshold) rows.push(el("dt", {}, "threshold"), el("dd", {}, Object.entries(ev.threshold).map(([k, v]) => `${words(k)} ${v}`).join(", ")));
  return el("dl", { class: "facts" }, rows);
}

function approvalsNote(ra) {
  return ra ? el("div", { class: "approvals" }, `Resuming needs ${ra.needed} reviewers: ${ra.approvals.length} approved`,
    ra.approvals.length ? ` (${ra.approvals.join(", ")})` : "", ".") : null;
}

function escalationCard(e, missionId, controlState, ra) {
  const related = (e.related || []).map((r) => el("li", {}, typeof r === "string" ? r : (r.reason || r.detector || JSON.stringify(r))));
  return el("div", { class: `card esc ${e.severity}`, "data-escalation": e.escalation_id },
    el("h3", {}, badge(e.severity === "pause" ? "pause" : "review"), " ", e.escalation_id, " ",
      el("span", { class: "muted" }, `· ${e.detector} · ${when(e.issued_at)}`)),
    el("div", { class: "reason" }, e.reason),
    el("details", { class: "evidence", open: document.body.dataset.page === "queue" }, el("summary", {}, "Evidence"), evidenceFacts(e.evidence),
      related.length ? el("div", {}, el("strong", {}, "Related evidence (same cause)"), el("ul", {}, related)) : null,
      el("div", { class: "muted" }, "Tipped by action receipt ", el("a", {
        href: `/api/missions/${encodeURIComponent(missionId)}/ledger`, title: "the mission's ledger" }, e.triggered_by))),
    e.reviews && e.reviews.length ? el("div", { class: "muted" }, e.reviews.map((r) => `${r.decision} by ${r.reviewer} (${when(r.occurred_at)})`).join("; ")) : null,
    ra && ra.escalation_id === e.escalation_id ? approvalsNote(ra) : null,
    e.open || controlState === "paused" ? reviewForm(missionId, e, controlState) : el("span", { class: "badge closed" }, "closed"));
}

/* ---------- missions overview ---------- */
const overview = { sort: "state", asc: true, filter: "", state: "", rows: [], flash: new Set() };
const STATE_RANK = { needs_review: 0, paused: 1, running: 2, terminated: 3 };

async function missionsPage() {
  const main = $("#main");
  const r = await api("/api/missions");
  if (r.status !== 200) return needToken(main, r.status);
  overview.rows = r.body.missions;
  const counts = r.body.counts;
  const tiles = el("div", { class: "tiles" }, Object.keys(STATE_RANK).map((s) =>
    el("div", { class: `tile ${s}` }, el("div", { class: "n", id: `count-${s}` }, counts[s] || 0), el("div", { class: "l" }, STATE_WORDS[s]))));
  const filter = el("input", { type: "search", placeholder: "Filter missions, owners, tactics…", value: overview.filter, id: "filter",
    oninput: (e) => { overview.filter = e.target.value; drawTable(); } });
  const pick = el("select", { id: "state-filter", onchange: (e) => { overview.state = e.target.value; drawTable(); } },
    el("option", { value: "" }, "every state"), Object.keys(STATE_RANK).map((s) => el("option", { value: s, selected: overview.state === s }, STATE_WORDS[s])));
  fill(main, el("h1", {}, "Missions"),
    el("div", { class: "sub" }, "Each mission's state, open escalations and latest strategy receipt. Live: new escalations appear without a reload."),
    tiles, el("div", { class: "bar" }, filter, pick), el("div", { id: "table" }));
  drawTable();
}

const COLUMNS = [
  ["mission_id", "Mission"], ["state", "State"], ["open_escalations", "Open escalations", true],
  ["review_status", "Review status"], ["actions", "Actions", true], ["actions_per_minute", "Actions / min", true],
  ["last", "Last strategy receipt"], ["owner", "Owner"],
];

function sortKey(row, col) {
  if (col === "state") return STATE_RANK[row.state] ?? 9;
  if (col === "last") return row.last_receipt ? row.last_receipt.issued_at : "";
  return row[col] ?? "";
}

function drawTable() {
  const f = overview.filter.toLowerCase();
  let rows = overview.rows.filter((r) => (!overview.state || r.state === overview.state) &&
    (!f || JSON.stringify([r.mission_id, r.owner, r.objective, r.tactics, r.spec]).toLowerCase().includes(f)));
  const dir = overview.asc ? 1 : -1;
  rows = rows.slice().sort((a, b) => {
    const x = sortKey(a, overview.sort), y = sortKey(b, overview.sort);
    return (x < y ? -1 : x > y ? 1 : 0) * dir || (a.mission_id < b.mission_id ? -1 : 1);
  });
  const head = el("tr", {}, COLUMNS.map(([k, label, n]) => el("th", {
    class: [n ? "num" : "", overview.sort === k ? "sorted" + (overview.asc ? " asc" : "") : ""].join(" "),
    onclick: () => { overview.asc = overview.sort === k ? !overview.asc : true; overview.sort = k; drawTable(); } }, label)));
  const body = rows.map((r) => el("tr", { "data-mission": r.mission_id, class: overview.flash.has(r.mission_id) ? "flash" : null },
    el("td", {}, el("a", { href: `/missions/${encodeURIComponent(r.mission_id)}` }, r.mission_id),
      r.objective ? el("div", { class: "muted" }, r.objective) : null),
    el("td", {}, badge(r.state)),
    el("td", { class: "num" }, r.open_escalations ? el("strong", {}, r.open_escalations) : "0"),
    el("td", {}, words(r.review_status)),
    el("td", { class: "num" }, num(r.actions)),
    el("td", { class: "num" }, num(r.actions_per_minute, 1)),
    el("td", {}, r.last_receipt ? [when(r.last_receipt.issued_at), el("div", { class: "muted" }, (r.last_receipt.tactics || []).join(", "))] : "–"),
    el("td", {}, r.owner || "–")));
  overview.flash.clear();
  fill($("#table"), rows.length ? el("table", { id: "missions" }, el("thead", {}, head), el("tbody", {}, body))
    : el("div", { class: "empty" }, overview.rows.length ? "No mission matches the filter." : "No missions yet."));
}

/* ---------- review queue ---------- */
async function queuePage() {
  const main = $("#main");
  const r = await api("/api/queue");
  if (r.status !== 200) return needToken(main, r.status);
  const groups = r.body.groups.map((g) => el("section", { class: "group", "data-mission": g.mission_id },
    el("h2", {}, el("a", { href: `/missions/${encodeURIComponent(g.mission_id)}` }, g.mission_id), badge(g.state),
      el("span", { class: "muted" }, g.objective || "")),
    el("div", { class: "grid" }, g.escalations.map((e) => escalationCard(e, g.mission_id, g.control_state, g.resume_approvals)))));
  fill(main, el("h1", {}, "Review queue"),
    el("div", { class: "sub" }, `${r.body.open} open escalation(s), oldest first, by mission. Each decision is signed under your reviewer key and enters the mission's chain.`),
    groups.length ? groups : el("div", { class: "empty" }, "Nothing waits for a review."));
}

/* ---------- a mission ---------- */
const PLOT = { displayModeBar: false, responsive: true };
const LAYOUT = { margin: { l: 56, r: 16, t: 8, b: 40 }, height: 260, font: { size: 12 }, legend: { orientation: "h", y: -0.25 } };
const layout = (extra) => Object.assign({}, LAYOUT, extra);
/* charts are drawn once their card is in the page, so they take its width */
let later = [];
const VERDICT_COLOR = { beyond: "#c0392b", within: "#1f7a4d", insufficient: "#9aa5b1", elevated: "#c0392b" };

function chartDiv() { return el("div", { class: "chart" }); }

const tooFew = () => el("div", { class: "muted" }, "Over time from the second strategy receipt on.");

const CHARTS = {
  /* per fairness metric, each cohort's gap to the rest with its time-uniform interval and the threshold */
  cohort_intervals(data) {
    const out = [];
    for (const [metric, cohorts] of Object.entries(data.view.fairness || {})) {
      const names = Object.keys(cohorts).filter((c) => cohorts[c].gap !== null && cohorts[c].gap !== undefined);
      if (!names.length) continue;
      const v = names.map((c) => cohorts[c]);
      const x = [names.map((c) => words(c.split("=")[0])), names.map((c) => c.split("=").slice(1).join("="))];
      const lo = v.map((x) => (x.interval ? x.gap - x.interval[0] : 0));
      const hi = v.map((x) => (x.interval ? x.interval[1] - x.gap : 0));
      const div = chartDiv();
      const shapes = [];
      const mg = v.find((x) => x.threshold && x.threshold.max_gap !== undefined);
      if (mg) for (const s of [-1, 1]) shapes.push({ type: "line", xref: "paper", x0: 0, x1: 1, y0: s * mg.threshold.max_gap, y1: s * mg.threshold.max_gap, line: { dash: "dash", color: "#c0392b", width: 1 } });
      later.push(() => Plotly.newPlot(div, [{ type: "scatter", mode: "markers", x, y: v.map((x) => x.gap),
        error_y: { type: "data", symmetric: false, array: hi, arrayminus: lo, color: "#5b6575" },
        marker: { size: 10, color: v.map((x) => VERDICT_COLOR[x.verdict] || "#2b6cb0") },
        text: v.map((x) => `${x.verdict}; estimate ${num(x.estimate)} vs ${num(x.reference_estimate)}; n ${x.n}; min detectable gap ${num(x.min_detectable_gap)}`),
        hovertemplate: "%{x}: gap %{y:.3f}<br>%{text}<extra></extra>" }],
        layout({ height: 250, yaxis: { title: "gap to the rest", zeroline: true }, xaxis: { tickangle: 0 }, shapes }), PLOT));
      const tally = {};
      for (const c of v) tally[c.verdict] = (tally[c.verdict] || 0) + 1;
      const beyond = names.filter((c) => cohorts[c].verdict === "beyond");
      out.push(el("div", { class: "sub-chart" }, el("h3", {}, words(metric)), div,
        el("div", { class: "muted" }, Object.entries(tally).map(([k, n]) => `${n} ${k}`).join(" · "),
          beyond.length ? [" — ", el("span", { class: "verdict-beyond" }, `beyond: ${beyond.join(", ")}`)] : null)));
    }
    return out.length ? el("div", { class: "sub-grid" }, out) : el("div", { class: "muted" }, "No cohort has enough data yet.");
  },
  /* each fairness metric's gap per cohort over the strategy receipts */
  fairness_series(data) {
    if (data.receipts.length < 2) return tooFew();
    const out = [];
    const metrics = new Set(data.receipts.flatMap((r) => Object.keys(r.fairness || {})));
    for (const metric of metrics) {
      const cohorts = new Set(data.receipts.flatMap((r) => Object.keys((r.fairness || {})[metric] || {})));
      const traces = [...cohorts].map((c) => ({ type: "scatter", mode: "lines", name: c,
        x: data.receipts.map((r) => r.issued_at), y: data.receipts.map((r) => (((r.fairness || {})[metric] || {})[c] || {}).gap ?? null) }));
      const div = chartDiv();
      later.push(() => Plotly.newPlot(div, traces, layout({ yaxis: { title: "gap" } }), PLOT));
      out.push(el("div", { class: "sub-chart" }, el("h3", {}, words(metric)), div));
    }
    return out.length ? el("div", { class: "sub-grid" }, out) : el("div", { class: "muted" }, "No strategy receipt yet.");
  },
  /* each risk signal now, in words: "complaint rate 1.8x baseline" */
  risk_signals(data) {
    const sig = Object.entries(data.view.risk_signals || {});
    if (!sig.length) return el("div", { class: "muted" }, "The spec names no risk signal.");
    return el("div", { class: "signals" }, sig.map(([name, s]) => el("div", { class: "signal", "data-signal": name },
      el("div", { class: "muted" }, words(name)),
      el("div", { class: "v " + (s.verdict === "elevated" ? "verdict-elevated" : "") }, s.ratio !== null && s.ratio !== undefined ? `${num(s.ratio, 2)}x baseline` : words(s.verdict)),
      el("div", { class: "muted" }, s.ratio !== null && s.ratio !== undefined ? words(s.verdict) : (s.reason || `n ${num(s.n)} against ${num(s.baseline_n)} in the baseline`)))));
  },
  /* each risk signal's ratio to its baseline over the receipts, with its allowed ratio */
  risk_series(data) {
    if (data.receipts.length < 2) return tooFew();
    const names = new Set(data.receipts.flatMap((r) => Object.keys(r.risk || {})));
    if (!names.size) return el("div", { class: "muted" }, "No risk signal yet.");
    const traces = [...names].map((n) => ({ type: "scatter", mode: "lines+markers", name: words(n),
      x: data.receipts.map((r) => r.issued_at), y: data.receipts.map((r) => ((r.risk || {})[n] || {}).ratio ?? null) }));
    const div = chartDiv();
    later.push(() => Plotly.newPlot(div, traces, layout({ yaxis: { title: "× baseline" }, shapes: [{ type: "line", xref: "paper", x0: 0, x1: 1, y0: 1, y1: 1, line: { color: "#9aa5b1", width: 1 } }] }), PLOT));
    return div;
  },
  /* the tactic mix over the receipts, with shift escalations marked */
  tactic_mix(data) {
    const windows = data.receipts.filter((r) => Object.keys(r.tactic_mix || {}).length);  /* receipts of a window with actions */
    if (windows.length < 2) return tooFew();
    const tactics = new Set(windows.flatMap((r) => Object.keys(r.tactic_mix)));
    if (!tactics.size) return el("div", { class: "muted" }, "No strategy receipt with actions yet.");
    const traces = [...tactics].map((t) => ({ type: "scatter", mode: "lines", stackgroup: "mix", name: t,
      x: windows.map((r) => r.issued_at), y: windows.map((r) => r.tactic_mix[t] || 0) }));
    const shifts = (data.escalations || []).filter((e) => /^(mix|followup|novelty)/.test(e.detector || ""));
    const shapes = shifts.map((e) => ({ type: "line", yref: "paper", y0: 0, y1: 1, x0: e.issued_at, x1: e.issued_at, line: { color: "#c0392b", dash: "dot" } }));
    const div = chartDiv();
    later.push(() => Plotly.newPlot(div, traces, layout({ yaxis: { title: "share of window", range: [0, 1] }, shapes }), PLOT));
    return div;
  },
  receipts_table(data) {
    const rows = data.receipts.slice(-40).reverse();
    if (!rows.length) return el("div", { class: "muted" }, "No strategy receipt yet.");
    return el("table", {}, el("thead", {}, el("tr", {}, ["seq", "issued", "state", "review status", "tactics", "open escalations"].map((h) => el("th", {}, h)))),
      el("tbody", {}, rows.map((r) => el("tr", {}, el("td", { class: "num" }, r.seq), el("td", {}, when(r.issued_at)), el("td", {}, r.state),
        el("td", {}, words(r.review_status)), el("td", {}, (r.tactics || []).join(", ")), el("td", {}, (r.open_escalations || []).join(", "))))));
  },
  concentration_table(data) {
    const rows = data.view.cohort_concentration || [];
    if (!rows.length) return el("div", { class: "muted" }, "Recent actions are spread like the mission's subjects.");
    return el("table", {}, el("thead", {}, el("tr", {}, ["cohort", "actions", "share of actions", "share of subjects", "lift"].map((h) => el("th", {}, h)))),
      el("tbody", {}, rows.map((c) => el("tr", {}, el("td", {}, c.cohort), el("td", { class: "num" }, num(c.actions)),
        el("td", { class: "num" }, num(c.actions_share)), el("td", { class: "num" }, num(c.subjects_share)), el("td", { class: "num" }, `${num(c.lift, 2)}x`)))));
  },
};

/* a query panel's rows (DuckDB over the mission's ledger) as a bar or line chart, or a table */
function queryChart(p, res) {
  if (res.error) throw new Error(res.error);
  const col = (name) => res.columns.indexOf(name);
  if (p.chart === "table" || !res.rows.length) {
    if (!res.rows.length) return el("div", { class: "muted" }, "The query returned no rows.");
    return el("table", {}, el("thead", {}, el("tr", {}, res.columns.map((c) => el("th", {}, c)))),
      el("tbody", {}, res.rows.slice(0, 200).map((r) => el("tr", {}, r.map((v) => el("td", { class: typeof v === "number" ? "num" : null }, num(v)))))));
  }
  for (const c of [p.x, p.y, p.color].filter(Boolean)) if (col(c) < 0) throw new Error(`the query has no column ${JSON.stringify(c)} (it has ${res.columns.join(", ")})`);
  const groups = new Map();
  for (const r of res.rows) {
    const key = p.color ? String(r[col(p.color)]) : p.y;
    if (!groups.has(key)) groups.set(key, { x: [], y: [] });
    groups.get(key).x.push(r[col(p.x)]);
    groups.get(key).y.push(r[col(p.y)]);
  }
  const traces = [...groups].map(([name, g]) => Object.assign({ name, x: g.x, y: g.y },
    p.chart === "bar" ? { type: "bar" } : { type: "scatter", mode: "lines" }));
  const div = chartDiv();
  later.push(() => Plotly.newPlot(div, traces, layout({ barmode: "group", showlegend: groups.size > 1, yaxis: { title: p.y }, xaxis: { title: p.x } }), PLOT));
  return res.truncated ? [div, el("div", { class: "muted" }, "Only the first rows are shown.")] : div;
}

function panel(p, data, results) {
  const card = el("div", { class: "card panel" + (p.wide ? " wide" : ""), "data-panel": p.title });
  card.append(el("h3", {}, p.title));
  try {
    if (p.error) throw new Error(p.error);
    if (p.query) card.append(...[queryChart(p, results.get(p.index))].flat());
    else {
      const render = CHARTS[p.chart];
      if (!render) throw new Error(`unknown chart ${JSON.stringify(p.chart)}`);
      card.append(...[render(data)].flat());
    }
  } catch (e) {
    card.append(el("div", { class: "err" }, `This panel failed: ${e.message}`));
  }
  return card;
}

async function missionPage() {
  const main = $("#main");
  const id = decodeURIComponent(location.pathname.split("/").pop());
  const r = await api(`/api/missions/${encodeURIComponent(id)}`);
  if (r.status === 404) return fill(main, el("div", { class: "empty" }, r.body.error));
  if (r.status !== 200) return needToken(main, r.status);
  const d = r.body, v = d.view;
  const open = d.escalations.filter((e) => e.open || (v.state === "paused" && e.escalation_id === v.cause));
  const facts = [["objective", v.objective], ["proxy metric", v.proxy_metric], ["constraints", (v.constraints || []).join("; ")],
    ["owner", v.owner], ["spec", `${v.spec} (${String(v.spec_version).slice(0, 19)}…)`], ["actions", num(v.totals.actions)],
    ["current tactics", (v.tactics || []).join(", ")], ["cohorts affected", (v.cohorts_affected || []).join(", ") || "none"]];
  fill(main, 
    el("h1", {}, v.mission_id, " ", badge(v.console_state)),
    el("dl", { class: "facts", id: "mission-facts" }, facts.flatMap(([k, x]) => [el("dt", {}, k), el("dd", {}, x || "–")])),
    el("h2", {}, `Open escalations (${open.length})`),
    open.length ? el("div", { class: "grid", id: "open-escalations" }, open.map((e) => escalationCard(e, v.mission_id, v.state, v.resume_approvals)))
      : el("div", { class: "empty" }, "Nothing open."),
    v.state !== "terminated" && !open.length ? el("div", { class: "card" }, el("h3", {}, "Decide without an escalation"), reviewForm(v.mission_id, null, v.state)) : null,
    el("h2", {}, "Evidence"),
    el("div", { class: "grid", id: "panels" }),
    el("h2", {}, "Escalations"),
    escalationsTable(d.escalations),
    el("h2", {}, "Review history"),
    reviewsTable(d.reviews));
  const grid = $("#panels");
  later = [];
  const boards = await api("/api/dashboards");
  const panels = boards.status === 200 ? boards.body.panels : [{ title: "Dashboards", error: boards.body.error || `HTTP ${boards.status}` }];
  const results = new Map();
  await Promise.all(panels.filter((p) => p.query).map(async (p) => {
    const res = await api(`/api/missions/${encodeURIComponent(id)}/panels/${p.index}`);
    results.set(p.index, res.status === 200 ? res.body : { error: res.body.error || `HTTP ${res.status}` });
  }));
  for (const p of panels) grid.append(panel(p, d, results));
  for (const draw of later.splice(0)) {
    try { draw(); } catch (e) { console.warn("a chart failed", e); }
  }
}

function escalationsTable(list) {
  if (!list.length) return el("div", { class: "empty" }, "No escalation so far.");
  return el("table", { id: "escalations" }, el("thead", {}, el("tr", {}, ["id", "issued", "severity", "detector", "reason", "status"].map((h) => el("th", {}, h)))),
    el("tbody", {}, list.slice().reverse().map((e) => el("tr", {}, el("td", {}, e.escalation_id), el("td", {}, when(e.issued_at)),
      el("td", {}, e.severity), el("td", {}, e.detector), el("td", {}, e.reason), el("td", {}, badge(e.open ? "open" : "closed"))))));
}

function reviewsTable(list) {
  if (!list.length) return el("div", { class: "empty" }, "No review so far.");
  return el("table", { id: "reviews" }, el("thead", {}, el("tr", {}, ["when", "reviewer", "decision", "escalation", "note"].map((h) => el("th", {}, h)))),
    el("tbody", {}, list.slice().reverse().map((r) => el("tr", {}, el("td", {}, when(r.occurred_at)), el("td", {}, r.reviewer),
      el("td", {}, r.decision), el("td", {}, r.escalation_id || "–"), el("td", {}, r.note || "")))));
}

/* ---------- start ---------- */
async function start() {
  const page = document.body.dataset.page;
  header(page);
  await openSession();
  showWho();
  refresh = keepingNotes({ missions: missionsPage, queue: queuePage, mission: missionPage }[page]);
  await refresh();
  const mine = page === "mission" ? decodeURIComponent(location.pathname.split("/").pop()) : null;
  liveEvents((kind, ev) => {
    if (mine && ev.mission_id !== mine) return;
    if (kind === "escalation") {
      overview.flash.add(ev.mission_id);
      toast(`New escalation on ${ev.mission_id}: ${ev.reason}`);
    }
    if (kind === "review_refused") toast(`Review ${ev.id} refused: ${ev.reason}`, true);
    if (kind === "receipt") return scheduleRefreshSoon();  /* routine: at most every 2 s; decisions at once */
    scheduleRefresh();
  });
}

let soon = null;
function scheduleRefreshSoon() {  /* strategy receipts redraw a page at most every 2 s */
  if (soon) return;
  soon = setTimeout(() => { soon = null; refresh(); }, 2000);
}

document.addEventListener("DOMContentLoaded", start);
