// fhir-intake console: the little the pages need beyond HTML. A form with data-confirm
// asks first (replays); after a search the result count takes the focus, so a screen
// reader says how many were found.
"use strict";
document.addEventListener("submit", (event) => {
  const form = event.target;
  const question = form instanceof HTMLFormElement ? form.dataset.confirm : undefined;
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});
document.addEventListener("DOMContentLoaded", () => {
  const status = document.querySelector("[data-focus]");
  if (status) {
    status.setAttribute("tabindex", "-1");
    status.focus();
  }
});
