// The web app's only script besides htmx: send the CSRF token with every htmx request, and
// move keyboard focus to what an htmx swap brought in, so screen readers announce it.
"use strict";

document.addEventListener("htmx:configRequest", (event) => {
  const meta = document.querySelector('meta[name="csrf-token"]');
  if (meta) event.detail.headers["X-CSRF-Token"] = meta.content;
});

document.addEventListener("htmx:afterSwap", (event) => {
  const target = event.detail.target;
  const focus = target.querySelector("[data-focus]") || (target.matches("[data-focus]") ? target : null);
  if (focus) {
    if (!focus.hasAttribute("tabindex")) focus.setAttribute("tabindex", "-1");
    focus.focus();
  }
});

// Buttons that copy a value into a form field (e.g. "use this mentor") without inline script.
document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-fill]");
  if (!button) return;
  const field = document.getElementById(button.dataset.fill);
  if (field) { field.value = button.dataset.value; field.focus(); }
});
