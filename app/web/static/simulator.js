// The customer simulator: type as a TikTok customer, watch the bot answer.
// The customer's own messages live only in this tab (the sandbox records what the bot
// sends, not what customers write); the bot's come from the server, polled every second.
(function () {
  "use strict";

  const root = document.getElementById("simulator");
  if (!root) return;
  const list = document.getElementById("messages");
  const statusLine = document.getElementById("status");
  const userInput = document.getElementById("user-id");
  const textInput = document.getElementById("text");
  const videoSelect = document.getElementById("video");
  const ready = root.dataset.ready === "yes";
  const USER_KEY = "philia-simulator-user";

  let userId = "";
  let mine = [];    // {at, kind, text, image_url}
  let theirs = [];  // the bot's, as the server returns them
  let lastSeq = 0;
  let polling = false;

  function randomUser() {
    const bytes = new Uint8Array(4);
    crypto.getRandomValues(bytes);
    return "sim-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function mineKey() { return "philia-simulator-mine:" + userId; }

  function become(id) {
    userId = id;
    userInput.value = id;
    localStorage.setItem(USER_KEY, id);
    mine = JSON.parse(sessionStorage.getItem(mineKey()) || "[]");
    theirs = [];
    lastSeq = 0;
    render();
    poll();
  }

  function bubble(message, from) {
    const item = document.createElement("li");
    item.className = "bubble " + from;
    item.dataset.from = from;
    if (message.kind === "image" && message.image_url) {
      const img = document.createElement("img");
      img.src = message.image_url;
      img.alt = from === "bot" ? "photo from the shop" : "your photo";
      item.appendChild(img);
    }
    if (message.text) {
      const text = document.createElement("div");
      text.className = "text";
      text.textContent = message.text;
      item.appendChild(text);
    }
    return item;
  }

  function render() {
    const all = mine.map((m) => ({ m, from: "me" }))
      .concat(theirs.map((m) => ({ m, from: "bot" })))
      .sort((a, b) => a.m.at - b.m.at);
    list.replaceChildren(...all.map(({ m, from }) => bubble(m, from)));
    list.scrollTop = list.scrollHeight;
  }

  function say(text) { statusLine.textContent = text; }

  async function poll() {
    if (!ready || polling || !userId) return;
    polling = true;
    const asked = userId;
    try {
      const url = "/simulator/api/messages?user_id=" + encodeURIComponent(asked) + "&after=" + lastSeq;
      const response = await fetch(url, { headers: { Accept: "application/json" } });
      if (!response.ok) {
        say("Cannot read the bot's replies (HTTP " + response.status + ").");
        return;
      }
      const thread = await response.json();
      if (asked !== userId || thread.messages.length === 0) return;
      for (const message of thread.messages) {
        theirs.push(message);
        lastSeq = Math.max(lastSeq, message.seq);
      }
      say("");
      render();
    } catch (error) {
      say("Cannot reach the simulator backend: " + error);
    } finally {
      polling = false;
    }
  }

  async function send(payload, shown) {
    if (!ready) return;
    mine.push(Object.assign({ at: Date.now() / 1000 }, shown));
    sessionStorage.setItem(mineKey(), JSON.stringify(mine));
    render();
    say("Sending…");
    try {
      const response = await fetch("/simulator/api/send", {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify(Object.assign({ user_id: userId }, payload)),
      });
      const body = await response.json().catch(() => ({}));
      if (!response.ok) {
        say("Not sent: " + (body.detail || body.error || "HTTP " + response.status));
      } else if (body.bot_status !== 200) {
        say("The bot answered the webhook with HTTP " + body.bot_status + ".");
      } else {
        say("Delivered to the bot; waiting for its reply…");
      }
    } catch (error) {
      say("Not sent: " + error);
    }
  }

  document.getElementById("composer").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = textInput.value.trim();
    if (!text) return;
    textInput.value = "";
    send({ kind: "text", text }, { kind: "text", text });
  });
  document.getElementById("send-video").addEventListener("click", () => {
    const option = videoSelect.selectedOptions[0];
    if (!videoSelect.value) { say("Pick a video to share first."); return; }
    send({ kind: "video", video_id: videoSelect.value },
         { kind: "text", text: "\u25B6 shared a video: " + option.textContent.trim() });
  });
  document.getElementById("send-photo").addEventListener("click", () => {
    send({ kind: "photo" }, { kind: "text", text: "\uD83D\uDCF7 sent a photo" });
  });
  document.getElementById("send-sticker").addEventListener("click", () => {
    send({ kind: "sticker" }, { kind: "text", text: "\uD83E\uDDF8 sent a sticker" });
  });
  for (const chip of document.querySelectorAll("#questions .question")) {
    chip.addEventListener("click", () => {
      const text = chip.dataset.question;
      send({ kind: "question", text }, { kind: "text", text });
    });
  }
  for (const chip of document.querySelectorAll("#reactions .reaction")) {
    chip.addEventListener("click", () => {
      const emoji = chip.dataset.emoji;
      if (theirs.length === 0) { say("The shop has not written yet: nothing to react to."); return; }
      send({ kind: "reaction", emoji },
           { kind: "text", text: "reacted " + emoji + " to the shop's last message" });
    });
  }
  document.getElementById("new-user").addEventListener("click", () => become(randomUser()));
  userInput.addEventListener("change", () => {
    const id = userInput.value.trim();
    if (/^[A-Za-z0-9_.-]{1,64}$/.test(id)) become(id);
    else say("A user id is 1 to 64 letters, digits, '_', '-' or '.'.");
  });

  if (!ready) {
    for (const control of document.querySelectorAll("#composer input, #composer button, #composer select")) {
      control.disabled = true;
    }
  }
  become(localStorage.getItem(USER_KEY) || randomUser());
  setInterval(poll, 1000);
})();
