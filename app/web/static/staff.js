// Philia staff pages: live updates without a build step or a framework.
// - the inbox list refreshes its rows (server-rendered HTML) every few seconds;
// - a conversation polls for new messages (JSON) and renders them with textContent,
//   so nothing a customer writes is ever parsed as HTML here;
// - countdowns tick; the reply form posts in the background when scripts run.
(function () {
  "use strict";

  var SCRIPT_HEADERS = { "X-Requested-With": "fetch", "Accept": "application/json" };

  function countdown(seconds) {
    if (seconds <= 0) return "closed";
    var hours = Math.floor(seconds / 3600);
    var minutes = Math.floor((seconds % 3600) / 60);
    if (hours) return hours + " h " + (minutes < 10 ? "0" : "") + minutes + " min";
    return Math.max(1, minutes) + " min";
  }

  function tickCountdowns() {
    var now = Date.now() / 1000;
    document.querySelectorAll(".countdown[data-ends-at]").forEach(function (el) {
      var endsAt = parseFloat(el.getAttribute("data-ends-at"));
      if (!endsAt) return;
      var left = Math.max(0, Math.floor(endsAt - now));
      el.textContent = countdown(left);
      el.classList.toggle("closed", left === 0);
    });
  }

  function toLogin() {
    window.location.href = "/login?next=" + encodeURIComponent(window.location.pathname);
  }

  function every(seconds, work) {
    // A chain of timeouts, not an interval: a slow answer never stacks requests.
    function run() {
      var next = function () { window.setTimeout(run, seconds * 1000); };
      if (document.hidden) { next(); return; }
      work().then(next, next);
    }
    window.setTimeout(run, seconds * 1000);
  }

  function setupInboxList(table) {
    var body = table.querySelector("tbody");
    var url = table.getAttribute("data-refresh-url");
    var seconds = parseFloat(table.getAttribute("data-refresh-seconds")) || 5;
    every(seconds, function () {
      return fetch(url, { headers: SCRIPT_HEADERS, credentials: "same-origin" }).then(function (response) {
        if (response.status === 401) { toLogin(); return; }
        if (!response.ok) return;
        return response.text().then(function (html) {
          // Rendered by our own templates with autoescaping: safe to insert.
          body.innerHTML = html;
          tickCountdowns();
        });
      });
    });
  }

  function statusLabel(status) { return status.replace("_", " "); }

  function renderMessage(message) {
    var li = document.createElement("li");
    li.className = "message " + message.direction + " status-" + message.status;
    li.setAttribute("data-id", String(message.id));
    li.setAttribute("data-status", message.status);
    var meta = document.createElement("div");
    meta.className = "meta";
    var who = document.createElement("span");
    who.className = "who";
    who.textContent = message.author;
    var time = document.createElement("time");
    time.textContent = message.at;
    meta.appendChild(who);
    meta.appendChild(document.createTextNode(" "));
    meta.appendChild(time);
    if (message.direction === "outbound") {
      var status = document.createElement("span");
      status.className = "status";
      status.textContent = statusLabel(message.status);
      meta.appendChild(document.createTextNode(" "));
      meta.appendChild(status);
    }
    var text = document.createElement("div");
    text.className = "text";
    text.textContent = message.text;
    li.appendChild(meta);
    li.appendChild(text);
    if (message.status_reason && (message.status === "not_sent" || message.status === "failed")) {
      var reason = document.createElement("div");
      reason.className = "reason";
      reason.textContent = message.status_reason;
      li.appendChild(reason);
    }
    return li;
  }

  function setupConversation(section) {
    var list = section.querySelector("#messages");
    var url = section.getAttribute("data-poll-url");
    var seconds = parseFloat(section.getAttribute("data-poll-seconds")) || 2.5;
    var form = section.querySelector("#reply-form");

    function cursor() {
      // From just before the oldest message still queued, so its new status comes back.
      var pending = list.querySelectorAll('[data-status="pending"]');
      if (pending.length) return parseInt(pending[0].getAttribute("data-id"), 10) - 1;
      var last = list.lastElementChild;
      return last ? parseInt(last.getAttribute("data-id"), 10) : 0;
    }

    function apply(data) {
      var atBottom = window.innerHeight + window.scrollY >= document.body.scrollHeight - 40;
      data.messages.forEach(function (message) {
        var fresh = renderMessage(message);
        var existing = list.querySelector('[data-id="' + message.id + '"]');
        if (existing) list.replaceChild(fresh, existing); else list.appendChild(fresh);
      });
      if (data.messages.length && atBottom) window.scrollTo(0, document.body.scrollHeight);
      var mode = document.getElementById("mode");
      if (mode && mode.getAttribute("data-mode") !== data.mode) {
        // The actions differ by mode (hand back / take over): reload for the right ones.
        window.location.reload();
        return;
      }
      var left = document.getElementById("window-left");
      if (left) left.setAttribute("data-ends-at", data.window.open && data.window.ends_at ? String(data.window.ends_at) : "");
      if (left && !data.window.open) { left.textContent = "closed"; left.classList.add("closed"); }
      var replies = document.getElementById("replies-left");
      if (replies) replies.textContent = String(data.window.replies_left);
      var closed = document.getElementById("reply-closed");
      if (closed) {
        closed.hidden = data.window.open && data.window.replies_left > 0;
        closed.textContent = data.window.open
          ? "The reply quota of this window is spent: nothing can be sent until the customer writes again."
          : "The reply window is closed: nothing can be sent until the customer writes again.";
      }
      tickCountdowns();
    }

    function poll() {
      return fetch(url + "?after=" + cursor(), { headers: SCRIPT_HEADERS, credentials: "same-origin" })
        .then(function (response) {
          if (response.status === 401) { toLogin(); return; }
          if (!response.ok) return;
          return response.json().then(apply);
        });
    }

    every(seconds, poll);

    if (form) {
      var error = form.querySelector("#reply-error");
      var button = form.querySelector("button[type=submit]");
      form.addEventListener("submit", function (event) {
        event.preventDefault();
        var data = new FormData(form);
        var token = data.get("csrf_token");
        button.disabled = true;
        error.hidden = true;
        fetch(form.action, {
          method: "POST",
          body: data,
          credentials: "same-origin",
          headers: { "X-Requested-With": "fetch", "Accept": "application/json", "X-CSRF-Token": token }
        }).then(function (response) {
          if (response.status === 401) { toLogin(); return; }
          return response.json().then(function (body) {
            if (response.ok) {
              form.querySelector("textarea").value = "";
              return poll();
            }
            error.textContent = body.detail || "The reply was not sent.";
            error.hidden = false;
          });
        }).catch(function () {
          error.textContent = "The reply could not be sent: the connection failed. Try again.";
          error.hidden = false;
        }).then(function () { button.disabled = false; });
      });
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    var table = document.querySelector("table.inbox[data-refresh-url]");
    if (table) setupInboxList(table);
    var section = document.querySelector("section.conversation[data-poll-url]");
    if (section) setupConversation(section);
    tickCountdowns();
    window.setInterval(tickCountdowns, 30 * 1000);
  });
})();
