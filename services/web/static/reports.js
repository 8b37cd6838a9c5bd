// Draws the report page's charts from the JSON the server put in the page (no inline script).
"use strict";
(function () {
  const data = JSON.parse(document.getElementById("report-data").textContent);
  Chart.defaults.animation = false;
  const weeks = data.series.weeks || [];
  const m = data.summary.total.matching;
  window.reportCharts = {
    trend: new Chart(document.getElementById("chart-trend"), {
      type: "line",
      data: { labels: weeks.map((w) => w.week_start), datasets: [
        { label: "Meetings held", data: weeks.map((w) => w.meetings), borderColor: "#0b5cad", backgroundColor: "#0b5cad" },
        { label: "Open mentorships", data: weeks.map((w) => w.open_mentorships), borderColor: "#136c2e", backgroundColor: "#136c2e" },
      ] },
      options: { responsive: true, maintainAspectRatio: false, scales: { y: { beginAtZero: true } } },
    }),
    funnel: new Chart(document.getElementById("chart-funnel"), {
      type: "bar",
      data: { labels: ["Eligible", "Proposals", "Accepted", "Matched"], datasets: [
        { label: "Mentees / proposals", data: [m.mentees_eligible, m.proposals, m.proposals_accepted, m.mentees_matched], backgroundColor: "#0b5cad" },
      ] },
      options: { indexAxis: "y", responsive: true, maintainAspectRatio: false, plugins: { legend: { display: false } } },
    }),
  };
  document.body.dataset.chartsReady = "true";
})();
