// Small behaviours without inline scripts (the CSP forbids them).
document.addEventListener("DOMContentLoaded", () => {
  // A form submits once: a double tap in gloves must not send it twice.
  document.querySelectorAll("form[data-once]").forEach((form) => {
    form.addEventListener("submit", () => {
      form.querySelectorAll("button[type=submit]").forEach((button) => { button.disabled = true; });
    });
  });
  // A refused form comes back where the person was working, not at the top of a long page: scroll to
  // its first error and put the cursor in that field (the typed text is already there).
  const error = document.querySelector("form .has-error, form .error, form [role=alert]");
  if (error) {
    error.scrollIntoView({ block: "center" });
    const field = (error.closest(".field") || error.closest("form")).querySelector("input:not([type=hidden]), textarea, select");
    if (field) { field.focus({ preventScroll: true }); }
  }
});
