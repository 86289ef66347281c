// The web app's only script of its own (CSP: scripts from /static only, no inline code).
// Every htmx request carries the session's CSRF token in a header; the server refuses a
// request that changes anything without it.
(function () {
  "use strict";
  document.addEventListener("htmx:configRequest", function (event) {
    var meta = document.querySelector('meta[name="csrf-token"]');
    if (meta) {
      event.detail.headers["X-CSRF-Token"] = meta.getAttribute("content");
    }
  });
})();
