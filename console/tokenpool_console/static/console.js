// The console's own script: copy buttons and auto-submitting selects. No inline scripts (the
// Content-Security-Policy allows only files from this origin).
document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-copy]");
  if (!button) return;
  const source = document.querySelector(button.dataset.copy);
  if (source && navigator.clipboard) {
    navigator.clipboard.writeText(source.textContent.trim()).then(() => {
      button.classList.add("copied");
    });
  }
});
document.addEventListener("change", (event) => {
  if (event.target.matches("select[data-autosubmit]")) event.target.form.submit();
});
// Forms marked data-reset are emptied after a successful submit (a created user, token, ...).
document.addEventListener("htmx:afterRequest", (event) => {
  const form = event.target;
  if (form.matches && form.matches("form[data-reset]") && event.detail.successful) form.reset();
});
