// fhir-intake console: the little the pages need beyond HTML. A form with data-confirm
// asks first (replays); the page focuses its heading after a search, for screen readers.
"use strict";
document.addEventListener("submit", (event) => {
  const form = event.target;
  const question = form instanceof HTMLFormElement ? form.dataset.confirm : undefined;
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});
document.addEventListener("DOMContentLoaded", () => {
  const status = document.querySelector("[data-testid='count']");
  if (status) {
    status.setAttribute("tabindex", "-1");
  }
});
