/* kb: behaviour shared by every page, loaded by base.html.
 *
 * The Content-Security-Policy (docs/security.md) runs no inline script or event handler, so
 * pages ask for behaviour with data attributes and this file supplies it.
 */
(function () {
  "use strict";

  // Confirmation for destructive forms: <form data-confirm="Delete this?">.
  document.querySelectorAll("form[data-confirm]").forEach((form) => {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  });
})();
