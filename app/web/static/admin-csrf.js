// The admin (sqladmin) does not know our CSRF token: add it to every form that posts and
// to every script request to our own origin, from the <meta name="csrf-token"> of the page.
(function () {
  "use strict";
  var meta = document.querySelector('meta[name="csrf-token"]');
  var token = meta ? meta.getAttribute("content") : "";
  if (!token) return;

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form || (form.method || "").toLowerCase() !== "post") return;
    if (form.querySelector('input[name="csrf_token"]')) return;
    var input = document.createElement("input");
    input.type = "hidden";
    input.name = "csrf_token";
    input.value = token;
    form.appendChild(input);
  }, true);

  if (window.jQuery) {
    window.jQuery.ajaxSetup({ headers: { "X-CSRF-Token": token } });
  }

  var originalFetch = window.fetch;
  window.fetch = function (resource, init) {
    var url = new URL(resource instanceof Request ? resource.url : String(resource), window.location.href);
    if (url.origin === window.location.origin) {
      init = init || {};
      var headers = new Headers(init.headers || (resource instanceof Request ? resource.headers : undefined));
      headers.set("X-CSRF-Token", token);
      init.headers = headers;
    }
    return originalFetch.call(this, resource, init);
  };
})();
