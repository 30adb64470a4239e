// voicecoder sandbox chat: vanilla JS, no build step, talks only to the page's own origin.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const messagesEl = $("messages");
  const textEl = $("text");
  const form = $("composer");
  const subtitle = $("subtitle");
  const toastEl = $("toast");
  const recordBtn = $("record");
  const recordingEl = $("recording");
  const recTime = $("rec-time");
  const fileInput = $("file");
  const replyBar = $("reply-bar");
  const replyText = $("reply-text");

  const rendered = new Map(); // message key -> {el, rev}
  let version = null;
  let lastAnswer = 0;
  let firstLoad = true;
  let typingTimer = null;
  let replyTo = null; // {id, text}: the next message (text or voice) replies to it, like Telegram's Reply

  function setReply(target) {
    replyTo = target;
    replyBar.hidden = !target;
    replyText.textContent = target ? "“" + target.text + "”" : "";
    if (target) textEl.focus();
  }

  // --- helpers -------------------------------------------------------------
  function setStatus(text, cls) {
    subtitle.textContent = text;
    subtitle.className = "subtitle " + (cls || "");
  }

  function timeOf(unix) {
    const d = new Date(unix * 1000);
    return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  function humanSize(n) {
    if (n == null) return "";
    if (n < 1024) return n + " B";
    if (n < 1024 * 1024) return (n / 1024).toFixed(1) + " KB";
    return (n / 1024 / 1024).toFixed(1) + " MB";
  }

  function nearBottom() {
    return messagesEl.scrollHeight - messagesEl.scrollTop - messagesEl.clientHeight < 120;
  }

  function scrollToBottom() {
    messagesEl.scrollTop = messagesEl.scrollHeight;
  }

  let toastTimer = null;
  function toast(text, alert) {
    toastEl.textContent = text;
    toastEl.classList.toggle("alert", !!alert);
    toastEl.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { toastEl.hidden = true; }, alert ? 4000 : 2200);
  }

  function showError(text) {
    const line = document.createElement("div");
    line.className = "error-line";
    line.textContent = text;
    messagesEl.appendChild(line);
    scrollToBottom();
    setTimeout(() => line.remove(), 6000);
  }

  async function postJson(url, body) {
    const resp = await fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-Voicecoder-Sandbox": "1" },
      body: JSON.stringify(body),
    });
    if (!resp.ok) {
      let detail = resp.statusText;
      try { detail = (await resp.json()).error || detail; } catch (_) { /* not JSON */ }
      throw new Error(detail);
    }
    return resp.json();
  }

  // Colour diff lines inside <pre><code class="language-diff"> without touching the (already safe) markup
  // structure: only text nodes are split into spans.
  function colourDiffs(root) {
    root.querySelectorAll("pre code.language-diff, pre.language-diff").forEach((code) => {
      const text = code.textContent;
      code.textContent = "";
      for (const line of text.split("\n")) {
        const span = document.createElement("span");
        if (line.startsWith("+") && !line.startsWith("+++")) span.className = "add";
        else if (line.startsWith("-") && !line.startsWith("---")) span.className = "del";
        else if (line.startsWith("@@")) span.className = "hunk";
        span.textContent = line + "\n";
        code.appendChild(span);
      }
      if (code.lastChild) code.lastChild.textContent = code.lastChild.textContent.replace(/\n$/, "");
    });
    root.querySelectorAll(".tg-spoiler").forEach((s) => s.addEventListener("click", () => s.classList.add("revealed")));
  }

  // --- rendering -----------------------------------------------------------
  function renderBody(m) {
    const bubble = document.createElement("div");
    bubble.className = "bubble";

    if (m.document) {
      const a = document.createElement("a");
      a.className = "document";
      a.href = m.document.url;
      a.setAttribute("download", m.document.name);
      a.dataset.testid = "document";
      const icon = document.createElement("span");
      icon.className = "doc-icon";
      icon.textContent = "⬇";
      const info = document.createElement("span");
      const name = document.createElement("div");
      name.className = "doc-name";
      name.textContent = m.document.name;
      const size = document.createElement("div");
      size.className = "doc-size";
      size.textContent = humanSize(m.document.size);
      info.append(name, size);
      a.append(icon, info);
      bubble.appendChild(a);
    }

    if (m.voice) {
      const v = document.createElement("div");
      v.className = "voice-note";
      const label = document.createElement("span");
      label.className = "voice-label";
      label.textContent = "🎤 Voice note" + (m.voice.duration ? " · " + m.voice.duration + " s" : "");
      v.appendChild(label);
      if (m.voice.url) {
        const audio = document.createElement("audio");
        audio.controls = true;
        audio.preload = "none";
        audio.src = m.voice.url;
        v.appendChild(audio);
      }
      bubble.appendChild(v);
    }

    if (m.reply_to) {
      const quote = document.createElement("div");
      quote.className = "quote";
      quote.textContent = m.reply_to.text || "a message";
      bubble.appendChild(quote);
    }

    if (m.html) {
      const body = document.createElement("div");
      body.className = "text";
      // m.html is produced by the server from Telegram entities: only the Telegram tag subset, text escaped.
      body.innerHTML = m.html;
      colourDiffs(body);
      bubble.appendChild(body);
    }

    const meta = document.createElement("span");
    meta.className = "meta";
    meta.textContent = (m.edited ? "edited " : "") + timeOf(m.date);
    bubble.appendChild(meta);
    return bubble;
  }

  function renderKeyboard(m) {
    if (!m.buttons || !m.buttons.length) return null;
    const kb = document.createElement("div");
    kb.className = "keyboard";
    kb.dataset.testid = "keyboard";
    for (const row of m.buttons) {
      const r = document.createElement("div");
      r.className = "row";
      for (const b of row) {
        if (b.url) {
          const a = document.createElement("a");
          a.className = "url-button";
          a.href = b.url;
          a.target = "_blank";
          a.rel = "noopener noreferrer";
          a.textContent = b.text + " ↗";
          r.appendChild(a);
          continue;
        }
        const btn = document.createElement("button");
        btn.type = "button";
        btn.textContent = b.text;
        btn.dataset.testid = "inline-button";
        if (b.callback_data == null) {
          btn.disabled = true;
        } else {
          btn.addEventListener("click", () => press(m.id, b.callback_data, btn));
        }
        r.appendChild(btn);
      }
      kb.appendChild(r);
    }
    return kb;
  }

  // A tool question still waiting for an answer: its buttons are ✅ Allow (y), 🔓 (w) and ❌ Deny (n).
  function isOpenQuestion(m) {
    return (m.buttons || []).some((row) => row.some((b) => /^[ywn]:/.test(b.callback_data || "")));
  }

  function renderMessage(m) {
    const el = document.createElement("div");
    el.className = "msg " + (m.from === "bot" ? "bot" : "me");
    el.dataset.key = m.key;
    el.dataset.testid = m.from === "bot" ? "bot-message" : "my-message";
    el.appendChild(renderBody(m));
    const kb = renderKeyboard(m);
    if (kb) el.appendChild(kb);
    if (m.from === "bot" && isOpenQuestion(m)) {
      const reply = document.createElement("button");
      reply.type = "button";
      reply.className = "reply-button";
      reply.dataset.testid = "reply";
      reply.textContent = "↩ Reply with a reason";
      reply.title = "Reply to this question: it is denied, and Claude reads your reason (type or record it)";
      const snippet = (el.querySelector(".text") || el).textContent.trim().slice(0, 80);
      reply.addEventListener("click", () => setReply({ id: m.id, text: snippet }));
      el.appendChild(reply);
    }
    return el;
  }

  function applyConversation(data) {
    const stick = firstLoad || nearBottom();
    const seen = new Set();
    let previous = null;
    for (const m of data.messages) {
      seen.add(m.key);
      const known = rendered.get(m.key);
      let el;
      if (!known) {
        el = renderMessage(m);
        if (previous && previous.nextSibling) messagesEl.insertBefore(el, previous.nextSibling);
        else if (previous) messagesEl.appendChild(el);
        else messagesEl.appendChild(el);
        rendered.set(m.key, { el, rev: m.rev });
      } else if (known.rev !== m.rev) {
        el = renderMessage(m); // edited in place, like Telegram
        if (!firstLoad) el.classList.add("highlight");
        known.el.replaceWith(el);
        known.el = el;
        known.rev = m.rev;
      } else {
        el = known.el;
      }
      previous = el;
    }
    for (const [key, info] of rendered) {
      if (!seen.has(key)) { info.el.remove(); rendered.delete(key); }
    }
    for (const a of data.answers || []) {
      if (a.seq > lastAnswer) {
        lastAnswer = a.seq;
        if (!firstLoad && a.text) toast(a.text, a.show_alert);
      }
    }
    if (stick) scrollToBottom();
    firstLoad = false;
  }

  // --- long poll -----------------------------------------------------------
  async function pollLoop() {
    let failures = 0;
    for (;;) {
      const params = new URLSearchParams({ wait: version === null ? "0" : "25" });
      if (version !== null) params.set("since", String(version));
      try {
        const resp = await fetch("api/conversation?" + params.toString(), { cache: "no-store" });
        if (!resp.ok) throw new Error(resp.statusText);
        const data = await resp.json();
        failures = 0;
        setStatus(data.typing ? "typing…" : "bot · local sandbox", "online");
        clearTimeout(typingTimer);
        if (data.typing) typingTimer = setTimeout(() => setStatus("bot · local sandbox", "online"), 5000);
        if (data.version !== version) {
          version = data.version;
          applyConversation(data);
        }
      } catch (err) {
        failures += 1;
        setStatus("offline — retrying…", "offline");
        await new Promise((r) => setTimeout(r, Math.min(5000, 300 * 2 ** failures)));
      }
    }
  }

  // --- actions -------------------------------------------------------------
  // On a phone the example requests take a third of the screen: once the user has sent something, fold them
  // away (the summary still opens them) so the conversation gets the room.
  const examples = document.querySelector("[data-testid=examples]");
  const narrow = window.matchMedia("(max-width: 600px)");
  function foldExamplesOnPhones() {
    if (examples && narrow.matches) examples.open = false;
  }

  async function sendText(text) {
    text = text.trim();
    if (!text) return;
    foldExamplesOnPhones();
    const body = { text };
    if (replyTo) body.reply_to = replyTo.id;
    setReply(null);
    try {
      await postJson("api/send", body);
    } catch (err) {
      showError("Could not send: " + err.message);
    }
  }

  async function press(messageId, data, btn) {
    btn.classList.add("pressed");
    try {
      await postJson("api/press", { message_id: messageId, data });
    } catch (err) {
      showError("Button failed: " + err.message);
    } finally {
      setTimeout(() => btn.classList.remove("pressed"), 600);
    }
  }

  async function sendVoice(blob, filename, duration, recorded) {
    foldExamplesOnPhones();
    const body = new FormData();
    body.append("voice", blob, filename);
    if (recorded) body.append("kind", "voice");
    if (duration) body.append("duration", String(Math.max(1, Math.round(duration))));
    if (replyTo) body.append("reply_to", String(replyTo.id));
    setReply(null);
    try {
      const resp = await fetch("api/voice", { method: "POST", body, headers: { "X-Voicecoder-Sandbox": "1" } });
      if (!resp.ok) {
        let detail = resp.statusText;
        try { detail = (await resp.json()).error || detail; } catch (_) { /* not JSON */ }
        throw new Error(detail);
      }
    } catch (err) {
      showError("Could not send the voice note: " + err.message);
    }
  }

  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const text = textEl.value;
    textEl.value = "";
    autosize();
    sendText(text);
    textEl.focus();
  });

  textEl.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
      ev.preventDefault();
      form.requestSubmit();
    }
  });

  function autosize() {
    textEl.style.height = "auto";
    textEl.style.height = Math.min(140, textEl.scrollHeight) + "px";
  }
  textEl.addEventListener("input", autosize);

  $("reply-cancel").addEventListener("click", () => setReply(null));
  textEl.addEventListener("keydown", (ev) => { if (ev.key === "Escape" && replyTo) setReply(null); });

  document.querySelectorAll("[data-command]").forEach((chip) => {
    chip.addEventListener("click", () => sendText(chip.dataset.command));
  });

  $("upload").addEventListener("click", () => fileInput.click());

  async function fileDuration(file) {
    // A Telegram client sends a file's real length; decode it here (the server measures it too if this fails).
    const Ctx = window.OfflineAudioContext || window.webkitOfflineAudioContext;
    if (!Ctx) return null;
    try {
      const decoded = await new Ctx(1, 1, 48000).decodeAudioData(await file.arrayBuffer());
      return decoded.duration;
    } catch (_) {
      return null;
    }
  }

  fileInput.addEventListener("change", async () => {
    const file = fileInput.files && fileInput.files[0];
    fileInput.value = "";
    if (file) await sendVoice(file, file.name, await fileDuration(file), false);
  });

  // --- recording (MediaRecorder) ---------------------------------------------
  let recorder = null;
  let chunks = [];
  let startedAt = 0;
  let tick = null;
  let discard = false;

  function pickMime() {
    // Containers the bot accepts first (OGG: Firefox; MP4: Chromium, Safari); WebM only as a last resort.
    const candidates = ["audio/ogg;codecs=opus", "audio/mp4", "audio/webm;codecs=opus", "audio/webm"];
    if (typeof MediaRecorder === "undefined") return null;
    return candidates.find((t) => MediaRecorder.isTypeSupported(t)) || "";
  }

  function extensionFor(mime) {
    if (mime.startsWith("audio/ogg")) return "ogg";
    if (mime.startsWith("audio/webm")) return "webm";
    if (mime.startsWith("audio/mp4")) return "m4a";
    return "bin";
  }

  function stopUi() {
    recordBtn.classList.remove("active");
    recordingEl.hidden = true;
    textEl.hidden = false;
    clearInterval(tick);
  }

  async function startRecording() {
    const mime = pickMime();
    if (mime === null || !navigator.mediaDevices) {
      showError("Recording is not available in this browser; use 📎 to upload an audio file.");
      return;
    }
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    } catch (err) {
      showError("Microphone not available: " + err.message);
      return;
    }
    chunks = [];
    discard = false;
    recorder = new MediaRecorder(stream, mime ? { mimeType: mime } : undefined);
    recorder.addEventListener("dataavailable", (ev) => { if (ev.data.size) chunks.push(ev.data); });
    recorder.addEventListener("stop", () => {
      stream.getTracks().forEach((t) => t.stop());
      const type = recorder.mimeType || mime || "audio/webm";
      const duration = (performance.now() - startedAt) / 1000;
      recorder = null;
      stopUi();
      if (!discard && chunks.length) {
        sendVoice(new Blob(chunks, { type }), "voice." + extensionFor(type), duration, true);
      }
    });
    recorder.start();
    startedAt = performance.now();
    recordBtn.classList.add("active");
    recordingEl.hidden = false;
    textEl.hidden = true;
    recTime.textContent = "0:00";
    tick = setInterval(() => {
      const s = Math.floor((performance.now() - startedAt) / 1000);
      recTime.textContent = Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0");
    }, 250);
  }

  recordBtn.addEventListener("click", () => {
    if (recorder) recorder.stop();
    else startRecording();
  });

  $("rec-cancel").addEventListener("click", () => {
    discard = true;
    if (recorder) recorder.stop();
  });

  pollLoop();
  textEl.focus();
})();
