// The analytics dashboard: sign in with a token, pick a scope and a period, draw the reports.
// Everything drawn comes from the report endpoints, unchanged (the browser test checks it).
"use strict";

const $ = (id) => document.getElementById(id);
const charts = {};
window.dashboard = { charts, data: {} };
Chart.defaults.animation = false;
Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
const COLORS = { blue: "#1f6feb", green: "#15803d", orange: "#c2410c", grey: "#94a3b8", purple: "#7c3aed", teal: "#0f766e" };

function claims(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(part));
  } catch (e) {
    return null;
  }
}

function show(el, on) { el.hidden = !on; }
function fmt(v, suffix = "") { return v === null || v === undefined ? "–" : `${v}${suffix}`; }
function esc(s) { return String(s ?? "–").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c])); }

async function api(path) {
  const token = sessionStorage.getItem("analytics-token");
  const response = await fetch(path, { headers: { Authorization: `Bearer ${token}` } });
  if (!response.ok) {
    let detail = response.statusText;
    try { detail = (await response.json()).detail || detail; } catch (e) { /* not JSON */ }
    const error = new Error(detail);
    error.status = response.status;
    throw error;
  }
  return response.json();
}

function network() { return claims(sessionStorage.getItem("analytics-token") || "")?.network_id; }

function query() {
  const [kind, id] = $("scope").value.split(":");
  const params = new URLSearchParams({ scope: kind, from: $("from").value, to: $("to").value });
  if (id) params.set("id", id);
  return params;
}

async function signIn(token) {
  sessionStorage.setItem("analytics-token", token);
  const c = claims(token);
  if (!c || !c.network_id) throw new Error("This does not look like an access token.");
  const scopes = await api(`/networks/${encodeURIComponent(c.network_id)}/report-scopes`);
  if (!scopes.scopes.length) throw new Error("Your token gives access to no report.");
  $("scope").innerHTML = scopes.scopes
    .map((s) => `<option value="${esc(s.kind)}:${esc(s.id ?? "")}">${esc(s.kind === "network" ? "Whole network" : `${s.kind[0].toUpperCase()}${s.kind.slice(1)}: ${s.label}`)}</option>`)
    .join("");
  show($("signin"), false);
  show($("controls"), true);
}

async function load() {
  const base = `/networks/${encodeURIComponent(network())}/reports`;
  const q = query();
  $("csv").href = `${base}/summary?${q}&format=csv`;
  show($("report-error"), false);
  document.body.dataset.ready = "false";
  const [summary, series, stalled, equity] = await Promise.all(
    ["summary", "series", "stalled", "equity"].map((r) => api(`${base}/${r}?${q}`)),
  );
  window.dashboard.data = { summary, series, stalled, equity };
  render(summary, series, stalled, equity);
  show($("report"), true);
  document.body.dataset.ready = "true";
}

function kpi(label, value, warn = false) {
  return `<div class="kpi${warn ? " warn" : ""}"><div class="value">${esc(value)}</div><div class="label">${esc(label)}</div></div>`;
}

function chart(id, config) {
  if (charts[id]) charts[id].destroy();
  charts[id] = new Chart($(id), config);
}

function table(id, columns, rows, rowClass = () => "") {
  const head = `<tr>${columns.map(([, title, num]) => `<th class="${num ? "num" : ""}">${esc(title)}</th>`).join("")}</tr>`;
  const body = rows.length
    ? rows.map((r) => `<tr class="${rowClass(r)}">${columns.map(([key, , num]) => `<td class="${num ? "num" : ""}">${esc(typeof key === "function" ? key(r) : r[key])}</td>`).join("")}</tr>`).join("")
    : `<tr><td colspan="${columns.length}" class="hint">Nothing to show for this period.</td></tr>`;
  $(id).innerHTML = head + body;
}

function render(summary, series, stalled, equity) {
  const t = summary.total;
  const e = t.enrolment, m = t.matching, g = t.engagement, o = t.outcomes, l = t.mentors;
  $("title").textContent = `${summary.scope.label} · ${summary.period.from} to ${summary.period.to}`;
  $("kpis").innerHTML = [
    kpi("Mentees", e.mentees), kpi("Mentors", e.mentors),
    kpi("Match rate", fmt(m.match_rate_pct, "%")), kpi("Mentees waiting", m.mentees_waiting, m.mentees_waiting > 0),
    kpi("Median days to match (p90)", `${fmt(m.time_to_match_days_median)} (${fmt(m.time_to_match_days_p90)})`),
    kpi("Open mentorships", g.mentorships_open), kpi("Stalled or never met", g.stalled + g.never_met, g.stalled + g.never_met > 0),
    kpi("Meetings / mentorship-month", fmt(g.meetings_per_mentorship_month)),
    kpi("Cadence kept", fmt(g.cadence_adherence_pct, "%")), kpi("Hours of mentoring", g.hours),
    kpi("Mentee satisfaction", fmt(o.satisfaction.mentee.mean, " / 5")), kpi("NPS", fmt(o.nps.score)),
  ].join("");

  const weeks = series.weeks;
  chart("chart-trend", {
    type: "line",
    data: {
      labels: weeks.map((w) => w.week_start),
      datasets: [
        { label: "Meetings held", data: weeks.map((w) => w.meetings), borderColor: COLORS.blue, backgroundColor: COLORS.blue, tension: 0.25 },
        { label: "Open mentorships", data: weeks.map((w) => w.open_mentorships), borderColor: COLORS.green, backgroundColor: COLORS.green, tension: 0.25 },
        { label: "Mentorships started", data: weeks.map((w) => w.started), borderColor: COLORS.purple, backgroundColor: COLORS.purple, tension: 0.25 },
        { label: "Mentees joined", data: weeks.map((w) => w.mentees_joined), borderColor: COLORS.grey, backgroundColor: COLORS.grey, tension: 0.25 },
      ],
    },
    options: { responsive: true, interaction: { mode: "index", intersect: false }, scales: { y: { beginAtZero: true } } },
  });
  chart("chart-funnel", {
    type: "bar",
    data: {
      labels: ["Mentees eligible", "Proposals", "Accepted", "Mentees matched now"],
      datasets: [{ label: "People / proposals", data: [m.mentees_eligible, m.proposals, m.proposals_accepted, m.mentees_matched], backgroundColor: [COLORS.grey, COLORS.blue, COLORS.teal, COLORS.green] }],
    },
    options: { indexAxis: "y", plugins: { legend: { display: false } }, scales: { x: { beginAtZero: true } } },
  });
  chart("chart-status", {
    type: "doughnut",
    data: {
      labels: ["Active", "Stalled", "Never met"],
      datasets: [{ data: [g.active, g.stalled, g.never_met], backgroundColor: [COLORS.green, COLORS.orange, COLORS.grey] }],
    },
    options: { plugins: { legend: { position: "right" } } },
  });
  const sat = o.satisfaction;
  chart("chart-satisfaction", {
    type: "bar",
    data: {
      labels: ["1", "2", "3", "4", "5"],
      datasets: [
        { label: `Mentees (n=${sat.mentee.responses})`, data: ["1", "2", "3", "4", "5"].map((k) => sat.mentee.distribution[k]), backgroundColor: COLORS.blue },
        { label: `Mentors (n=${sat.mentor.responses})`, data: ["1", "2", "3", "4", "5"].map((k) => sat.mentor.distribution[k]), backgroundColor: COLORS.teal },
      ],
    },
    options: { scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } },
  });
  chart("chart-load", {
    type: "bar",
    data: {
      labels: ["0", "1", "2", "3+"],
      datasets: [{ label: "Mentors", data: ["0", "1", "2", "3+"].map((k) => l.load_distribution[k]), backgroundColor: COLORS.purple }],
    },
    options: { plugins: { legend: { display: false } }, scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } },
  });

  const chapters = summary.chapters || [];
  show($("chapters-card"), chapters.length > 0);
  table("chapters", [
    ["label", "Chapter"], [(r) => r.enrolment.mentees, "Mentees", true], [(r) => r.enrolment.mentors, "Mentors", true],
    [(r) => fmt(r.matching.match_rate_pct, "%"), "Match rate", true], [(r) => r.matching.mentees_waiting, "Waiting", true],
    [(r) => fmt(r.matching.time_to_match_days_median), "Median days to match", true],
    [(r) => r.engagement.mentorships_open, "Open", true], [(r) => r.engagement.stalled + r.engagement.never_met, "Stalled / never met", true],
    [(r) => r.engagement.meetings, "Meetings", true], [(r) => fmt(r.outcomes.satisfaction.mentee.mean), "Mentee satisfaction", true],
  ], [...chapters, { label: "Total", ...t }]);

  table("stalled", [
    [(r) => r.status.replace("_", " "), "Status"], [(r) => r.mentor_name ?? r.mentor_id, "Mentor"], [(r) => r.mentee_name ?? r.mentee_id, "Mentee"],
    [(r) => r.program_name ?? r.program_id, "Program"], [(r) => (r.last_meeting_at || "never").slice(0, 10), "Last meeting"],
    ["days_without_meeting", "Days without a meeting", true], ["cadence_days", "Cadence (days)", true],
  ], stalled.pairs, (r) => r.status);

  table("outcomes", [["k", "Measure"], ["v", "Value", true]], [
    { k: "Goals set", v: o.goals_set }, { k: "Goals achieved", v: o.goals_achieved }, { k: "Milestones", v: o.milestones },
    { k: "Mentor satisfaction", v: fmt(sat.mentor.mean, " / 5") },
    { k: "Mentorships ended", v: o.ended }, { k: "Completed", v: o.completed }, { k: "Ended early", v: o.ended_early },
    ...Object.entries(o.end_reasons).map(([k, v]) => ({ k: `  ended: ${k.replace("_", " ")}`, v })),
    { k: "Proposals declined", v: m.proposals_declined }, { k: "Rematches", v: m.rematches },
  ]);
  table("recognised", [
    [(r) => r.name ?? r.mentor_id, "Mentor"], ["ratings", "Ratings", true], ["rating_mean", "Mean", true],
    [(r) => (r.public ? "yes" : "coordinators only"), "Public"],
  ], l.recognised);
  table("equity", [
    [(r) => r.attribute.replace(/_/g, " "), "Attribute"], ["value", "Group"], [(r) => (r.suppressed ? "fewer than 5" : r.mentees), "Mentees", true],
    [(r) => fmt(r.match_rate_pct, r.match_rate_pct === null ? "" : "%"), "Match rate", true],
    [(r) => fmt(r.time_to_match_days_median), "Median days to match", true], [(r) => fmt(r.satisfaction_mean), "Satisfaction", true],
  ], equity.cells);
}

function today(offset = 0) {
  const d = new Date(Date.now() + offset * 86400000);
  return d.toISOString().slice(0, 10);
}

function fail(el, error) {
  el.textContent = error.status === 401 ? "Your token is not valid or has expired: sign in again." : error.message;
  show(el, true);
}

$("signin-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  show($("signin-error"), false);
  try {
    await signIn($("token").value.trim());
    await load();
  } catch (error) {
    sessionStorage.removeItem("analytics-token");
    fail($("signin-error"), error);
  }
});
$("scope-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  try { await load(); } catch (error) { fail($("report-error"), error); }
});
$("signout").addEventListener("click", () => {
  sessionStorage.removeItem("analytics-token");
  location.reload();
});

const params = new URLSearchParams(location.search);
$("to").value = params.get("to") || today();
$("from").value = params.get("from") || today(-89);
const saved = sessionStorage.getItem("analytics-token");
if (saved) {
  signIn(saved).then(load).catch((error) => { sessionStorage.removeItem("analytics-token"); fail($("signin-error"), error); });
}
