/* kb chat client: websocket streaming, safe markdown, citations, settings, feedback.
 *
 * Protocol: docs/websocket-protocol.md. No build step, no dependencies.
 *
 * Screen readers: the message list is not a live region. An answer being written carries
 * aria-busy="true" and is never read out token by token; when it ends, one short sentence
 * ("Answer complete.", "Answer stopped." or the error) goes to the hidden #answer-status
 * region. The passage panel is a modal <dialog> that gives focus back to the citation that
 * opened it.
 *
 * Safety rule: text from the model or from documents is only ever put in the page through
 * textContent / createTextNode. This file never assigns innerHTML, so no markup in an
 * answer or a passage can reach the DOM as HTML.
 */
(function () {
  "use strict";

  const configNode = document.getElementById("chat-config");
  const config = configNode ? JSON.parse(configNode.textContent) : {};

  function csrfToken() {
    const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    if (match) return decodeURIComponent(match[1]);
    const input = document.querySelector("input[name=csrfmiddlewaretoken]");
    return input ? input.value : "";
  }

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  // Confirmation for destructive forms (delete conversation).
  document.querySelectorAll("form[data-confirm]").forEach((form) => {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  });

  /* ---------------------------------------------------------------------------------------
   * Markdown, safely: a small subset (paragraphs, fenced code, inline code, bold, italic,
   * bullet and numbered lists, headings as bold lines) built as DOM nodes from plain text.
   * Citation markers [n] (also [1, 2]) become buttons when passage n exists; `cite` maps each
   * passage number to the button's accessible name.
   * ------------------------------------------------------------------------------------- */

  const INLINE = /(`[^`\n]+`)|(\*\*[^*\n]+?\*\*)|(__[^_\n]+?__)|(\*[^*\s][^*\n]*?\*)|(\b_[^_\s][^_\n]*?_\b)|(\[\d{1,3}(?:\s*,\s*\d{1,3})*\])/g;

  function renderInline(text, parent, cite) {
    let last = 0;
    INLINE.lastIndex = 0;
    let match;
    while ((match = INLINE.exec(text)) !== null) {
      if (match.index > last) parent.appendChild(document.createTextNode(text.slice(last, match.index)));
      const token = match[0];
      if (match[1]) {
        parent.appendChild(el("code", null, token.slice(1, -1)));
      } else if (match[2] || match[3]) {
        const strong = el("strong");
        renderInline(token.slice(2, -2), strong, cite);
        parent.appendChild(strong);
      } else if (match[4] || match[5]) {
        const em = el("em");
        renderInline(token.slice(1, -1), em, cite);
        parent.appendChild(em);
      } else {
        const numbers = token.slice(1, -1).split(",").map((s) => parseInt(s.trim(), 10));
        if (cite && numbers.every((n) => cite.has(n))) {
          numbers.forEach((n) => {
            const button = el("button", "cite", String(n));
            button.type = "button";
            button.dataset.n = String(n);
            // "Source 2: Handbook, page 3" rather than a bare "2".
            button.setAttribute("aria-label", cite.get(n));
            button.title = cite.get(n);
            parent.appendChild(button);
          });
        } else {
          parent.appendChild(document.createTextNode(token));
        }
      }
      last = match.index + token.length;
      INLINE.lastIndex = last;
    }
    if (last < text.length) parent.appendChild(document.createTextNode(text.slice(last)));
  }

  function renderMarkdown(source, cite) {
    const fragment = document.createDocumentFragment();
    const lines = source.replace(/\r\n?/g, "\n").split("\n");
    let paragraph = [];
    let list = null;

    function flushParagraph() {
      if (!paragraph.length) return;
      const p = el("p");
      paragraph.forEach((line, i) => {
        if (i) p.appendChild(document.createElement("br"));
        renderInline(line, p, cite);
      });
      fragment.appendChild(p);
      paragraph = [];
    }
    function flushList() {
      list = null;
    }

    for (let i = 0; i < lines.length; i++) {
      const line = lines[i];
      const fence = line.match(/^\s*(```|~~~)\s*([\w+-]*)\s*$/);
      if (fence) {
        flushParagraph();
        flushList();
        const code = [];
        i++;
        while (i < lines.length && !lines[i].trim().startsWith(fence[1])) code.push(lines[i++]);
        const pre = el("pre");
        const codeNode = el("code", null, code.join("\n"));
        if (fence[2]) codeNode.dataset.lang = fence[2];
        pre.appendChild(codeNode);
        fragment.appendChild(pre);
        continue;
      }
      const bullet = line.match(/^\s*[-*+]\s+(.*)$/);
      const numbered = line.match(/^\s*(\d{1,4})[.)]\s+(.*)$/);
      if (bullet || numbered) {
        flushParagraph();
        const tag = bullet ? "ul" : "ol";
        if (!list || list.tagName.toLowerCase() !== tag) {
          list = el(tag);
          if (numbered && numbered[1] !== "1") list.start = parseInt(numbered[1], 10);
          fragment.appendChild(list);
        }
        const item = el("li");
        renderInline(bullet ? bullet[1] : numbered[2], item, cite);
        list.appendChild(item);
        continue;
      }
      if (!line.trim()) {
        flushParagraph();
        flushList();
        continue;
      }
      const heading = line.match(/^\s*#{1,6}\s+(.*)$/);
      if (heading) {
        flushParagraph();
        flushList();
        const p = el("p", "md-heading");
        const strong = el("strong");
        renderInline(heading[1], strong, cite);
        p.appendChild(strong);
        fragment.appendChild(p);
        continue;
      }
      if (list && /^\s{2,}\S/.test(line)) {
        // continuation of the previous list item
        list.lastChild.appendChild(document.createTextNode(" "));
        renderInline(line.trim(), list.lastChild, cite);
        continue;
      }
      flushList();
      paragraph.push(line);
    }
    flushParagraph();
    return fragment;
  }

  // The accessible name of a citation button; templates/chat/_message.html writes the same.
  function sourceLabel(n, title, location) {
    return "Source " + n + ": " + title + (location ? ", " + location : "");
  }

  function citationLabels(article) {
    const labels = new Map();
    article.querySelectorAll(".sources li[data-n]").forEach((li) => {
      labels.set(parseInt(li.dataset.n, 10), sourceLabel(li.dataset.n, li.dataset.title, li.dataset.location));
    });
    return labels;
  }

  function renderBody(article, text) {
    const body = article.querySelector(".msg-body");
    body.dataset.raw = text;
    body.replaceChildren(renderMarkdown(text, citationLabels(article)));
    body.classList.add("rendered");
  }

  /* ------------------------------------------------------------------------------------ */
  /* Passage panel: a modal <dialog> (Escape closes it natively)                            */

  const panel = document.getElementById("passage-panel");
  let opener = null; // {button, article, n}: where focus goes back when the panel closes

  function openPassage(article, n, button) {
    const item = article && article.querySelector('.sources li[data-n="' + n + '"]');
    if (!item || !panel) return;
    document.getElementById("passage-n").textContent = "Passage [" + n + "]";
    document.getElementById("passage-title").textContent = item.dataset.title || "";
    document.getElementById("passage-location").textContent = item.dataset.location || "";
    document.getElementById("passage-text").textContent = item.querySelector(".passage-text").textContent;
    opener = { button: button, article: article, n: n };
    if (!panel.open) panel.showModal();
    document.getElementById("passage-close").focus();
  }

  function returnFocus() {
    if (!opener) return;
    let target = opener.button;
    if (!target || !target.isConnected) {
      // A streaming answer re-renders its body, replacing the [n] button that was clicked:
      // fall back to the same marker in the new body, then to the source list entry.
      const n = '[data-n="' + opener.n + '"]';
      target = opener.article.querySelector("button.cite" + n) || opener.article.querySelector(".source-link" + n);
    }
    opener = null;
    if (target) target.focus();
  }

  if (panel) {
    document.getElementById("passage-close").addEventListener("click", () => panel.close());
    // The panel's content fills it, so a click that lands on the <dialog> itself is on the backdrop.
    panel.addEventListener("click", (event) => {
      if (event.target === panel) panel.close();
    });
    panel.addEventListener("close", returnFocus);
  }

  /* ------------------------------------------------------------------------------------ */
  /* Messages: building the same structure the server renders (templates/chat/_message.html) */

  const list = document.getElementById("messages");

  function feedbackUrl(messageId) {
    return config.feedbackUrl.replace(config.idPlaceholder, messageId);
  }

  function buildSources(article, sources) {
    let ol = article.querySelector(".sources");
    if (ol) ol.remove();
    if (!sources.length) return;
    ol = el("ol", "sources");
    sources.forEach((source) => {
      const li = el("li");
      li.dataset.n = String(source.n);
      li.dataset.title = source.title;
      li.dataset.location = source.location || "";
      const button = el("button", "source-link");
      button.type = "button";
      button.dataset.n = String(source.n);
      button.setAttribute("aria-label", sourceLabel(source.n, source.title, source.location));
      button.appendChild(el("span", "source-n", "[" + source.n + "]"));
      button.appendChild(document.createTextNode(" " + source.title));
      if (source.location) button.appendChild(el("span", "muted", " — " + source.location));
      li.appendChild(button);
      const passage = el("div", "passage-text", source.text);
      passage.hidden = true;
      li.appendChild(passage);
      ol.appendChild(li);
    });
    article.querySelector(".msg-body").after(ol);
  }

  function buildMessage(role) {
    const article = el("article", "msg msg-" + role);
    article.dataset.role = role;
    article.appendChild(el("div", "msg-role", role === "user" ? "You" : "kb"));
    article.appendChild(el("div", "msg-body md"));
    const empty = document.getElementById("no-messages");
    if (empty) empty.remove();
    list.appendChild(article);
    return article;
  }

  function addFooter(article, stats) {
    const footer = el("footer", "msg-meta");
    const parts = [];
    if (stats && stats.model) {
      parts.push(stats.model);
      if (stats.completion_tokens !== null && stats.completion_tokens !== undefined) parts.push(stats.completion_tokens + " tokens");
      if (stats.ttft_ms !== null && stats.ttft_ms !== undefined) parts.push("first token " + stats.ttft_ms + " ms");
      if (stats.tokens_per_s) parts.push(stats.tokens_per_s.toFixed(1) + " tok/s");
    }
    footer.appendChild(el("span", "msg-stats", parts.join(" · ")));
    // The buttons are static, trusted markup (icons) kept in a <template> of the page.
    const feedback = document.getElementById("feedback-template").content.firstElementChild.cloneNode(true);
    footer.appendChild(feedback);
    article.appendChild(footer);
  }

  function setNote(article, text, isError) {
    let note = article.querySelector(".msg-note");
    if (!note) {
      note = el("p", "msg-note");
      article.querySelector(".msg-body").after(note);
    }
    note.classList.toggle("msg-error", !!isError);
    note.textContent = text;
  }

  /* ------------------------------------------------------------------------------------ */
  /* Feedback                                                                              */

  async function sendFeedback(article, value, comment) {
    const body = new FormData();
    body.append("value", value);
    body.append("comment", comment || "");
    const response = await fetch(feedbackUrl(article.dataset.messageId), {
      method: "POST",
      body: body,
      headers: { "X-CSRFToken": csrfToken() },
      credentials: "same-origin",
    });
    const data = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(data.error || "Could not save your feedback.");
    return data;
  }

  function showFeedback(article, data) {
    const box = article.querySelector(".feedback");
    box.dataset.feedback = data.feedback;
    box.querySelector(".fb-up").setAttribute("aria-pressed", String(data.feedback === "up"));
    box.querySelector(".fb-down").setAttribute("aria-pressed", String(data.feedback === "down"));
    box.querySelector(".fb-comment-shown").textContent = data.comment || "";
  }

  function openCommentForm(article, value) {
    const footer = article.querySelector(".msg-meta");
    let form = footer.querySelector(".fb-form");
    if (form) form.remove();
    form = el("form", "fb-form");
    const input = el("input");
    input.type = "text";
    input.maxLength = 2000;
    input.placeholder = value === "up" ? "What was good? (optional)" : "What was wrong? (optional)";
    input.value = article.querySelector(".fb-comment-shown").textContent;
    const save = el("button", "primary", "Send");
    save.type = "submit";
    const cancel = el("button", "linklike", "Skip");
    cancel.type = "button";
    form.append(input, save, cancel);
    footer.appendChild(form);
    input.focus();
    cancel.addEventListener("click", () => form.remove());
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      try {
        showFeedback(article, await sendFeedback(article, value, input.value));
        form.remove();
      } catch (error) {
        setStatus(error.message, true);
      }
    });
  }

  /* ------------------------------------------------------------------------------------ */
  /* Click handling for citations, sources and feedback                                    */

  if (list) {
    list.addEventListener("click", async (event) => {
      const target = event.target.closest("button");
      if (!target) return;
      const article = target.closest(".msg");
      if (target.classList.contains("cite") || target.classList.contains("source-link")) {
        openPassage(article, target.dataset.n, target);
      } else if (target.classList.contains("fb-up") || target.classList.contains("fb-down")) {
        if (!article.dataset.messageId) return;
        const wanted = target.classList.contains("fb-up") ? "up" : "down";
        const current = article.querySelector(".feedback").dataset.feedback;
        const value = current === wanted ? "none" : wanted;
        try {
          showFeedback(article, await sendFeedback(article, value, ""));
          if (value !== "none") openCommentForm(article, value);
          else {
            const form = article.querySelector(".fb-form");
            if (form) form.remove();
          }
        } catch (error) {
          setStatus(error.message, true);
        }
      }
    });
    // Server-rendered history: turn plain text into safe markdown.
    list.querySelectorAll(".msg").forEach((article) => {
      const body = article.querySelector(".msg-body");
      renderBody(article, body.textContent);
    });
  }

  /* ------------------------------------------------------------------------------------ */
  /* Settings panel                                                                        */

  const settingsForm = document.getElementById("settings-form");

  function readSettings() {
    // Read the elements directly: FormData skips the disabled (greedy-mode) inputs.
    const fields = settingsForm.elements;
    const mode = settingsForm.querySelector("input[name=mode]:checked");
    const params = {
      mode: mode ? mode.value : "greedy",
      temperature: parseFloat(fields.temperature.value),
      top_k: parseInt(fields.top_k.value, 10),
      top_p: parseFloat(fields.top_p.value),
      max_tokens: parseInt(fields.max_tokens.value, 10),
    };
    const seed = String(fields.seed.value || "").trim();
    params.seed = seed === "" ? null : parseInt(seed, 10);
    return params;
  }

  function refreshSettingsView() {
    const sampling = settingsForm.querySelector("input[name=mode]:checked");
    const isSampling = sampling && sampling.value === "sampling";
    settingsForm.querySelectorAll(".sampling-only").forEach((block) => {
      block.classList.toggle("disabled", !isSampling);
      block.querySelectorAll("input").forEach((input) => (input.disabled = !isSampling));
    });
    settingsForm.querySelectorAll("output[data-for]").forEach((output) => {
      output.textContent = settingsForm.elements[output.dataset.for].value;
    });
  }

  let settingsTimer = null;
  async function saveSettings() {
    const status = document.getElementById("settings-status");
    try {
      const response = await fetch(config.settingsUrl, {
        method: "POST",
        body: JSON.stringify(readSettings()),
        headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken() },
        credentials: "same-origin",
      });
      const data = await response.json().catch(() => ({}));
      if (!response.ok) throw new Error(data.error || "Could not save the settings.");
      status.textContent = "Saved for this conversation.";
      status.classList.remove("error-text");
    } catch (error) {
      status.textContent = error.message;
      status.classList.add("error-text");
    }
  }

  if (settingsForm) {
    refreshSettingsView();
    settingsForm.addEventListener("input", () => {
      refreshSettingsView();
      clearTimeout(settingsTimer);
      settingsTimer = setTimeout(saveSettings, 400);
    });
    settingsForm.addEventListener("submit", (event) => event.preventDefault());
  }

  /* ------------------------------------------------------------------------------------ */
  /* The socket                                                                            */

  const composer = document.getElementById("composer");
  if (!composer || !config.conversation) return;

  const question = document.getElementById("question");
  const askButton = document.getElementById("ask-button");
  const stopButton = document.getElementById("stop-button");
  const regenerateButton = document.getElementById("regenerate-button");
  const statusLine = document.getElementById("chat-status");
  const answerStatus = document.getElementById("answer-status");

  const CLOSE_REASONS = {
    4401: "You are signed out. Sign in again to continue.",
    4404: "This conversation no longer exists.",
  };

  let socket = null;
  let busy = false;
  let current = null; // {article, text, frame}
  let pending = config.pendingQuestion || "";
  let retryDelay = 1000;

  function setStatus(text, isError) {
    statusLine.textContent = text || "";
    statusLine.classList.toggle("error-text", !!isError);
  }

  // The one thing a screen reader hears about an answer: how it ended. Cleared when the next
  // answer starts, so the same sentence twice in a row is still a change to announce.
  function announce(text) {
    if (answerStatus) answerStatus.textContent = text || "";
  }

  function hasQuestion() {
    return !!list.querySelector(".msg-user");
  }

  function setBusy(value) {
    busy = value;
    const open = socket && socket.readyState === WebSocket.OPEN;
    askButton.disabled = value || !open;
    stopButton.hidden = !value;
    regenerateButton.hidden = value || !hasQuestion();
    regenerateButton.disabled = !open;
  }

  function connect() {
    const scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    socket = new WebSocket(scheme + window.location.host + config.socketPath);
    socket.addEventListener("open", () => {
      retryDelay = 1000;
      setStatus("");
      setBusy(false);
      if (pending) {
        const text = pending;
        pending = "";
        ask(text);
      }
    });
    socket.addEventListener("message", (event) => {
      let data;
      try {
        data = JSON.parse(event.data);
      } catch (error) {
        return;
      }
      handle(data);
    });
    socket.addEventListener("close", (event) => {
      if (current) finishCurrent("Connection lost: the partial answer was saved.", true);
      setBusy(false);
      askButton.disabled = true;
      if (CLOSE_REASONS[event.code]) {
        setStatus(CLOSE_REASONS[event.code], true);
        return;
      }
      setStatus("Disconnected. Reconnecting…", true);
      setTimeout(connect, retryDelay);
      retryDelay = Math.min(retryDelay * 2, 15000);
    });
  }

  function startAnswer() {
    const article = buildMessage("assistant");
    article.classList.add("streaming");
    article.setAttribute("aria-busy", "true");
    announce("");
    current = { article: article, text: "", frame: 0, queued: false };
    setNote(article, "Searching the knowledge base…");
    return article;
  }

  function scrollDown() {
    list.scrollTop = list.scrollHeight;
    const main = document.scrollingElement;
    if (main) main.scrollTop = main.scrollHeight;
  }

  function ask(text) {
    const user = buildMessage("user");
    renderBody(user, text);
    const titleLink = document.querySelector(".conversation-list li.active a");
    const title = document.querySelector(".chat-title");
    if (title && title.textContent === "New conversation") {
      const short = text.length > 60 ? text.slice(0, 60) + "…" : text;
      title.textContent = short;
      if (titleLink) titleLink.textContent = short;
    }
    startAnswer();
    const frame = { type: "ask", content: text };
    if (settingsForm) frame.params = readSettings();
    socket.send(JSON.stringify(frame));
    setBusy(true);
    scrollDown();
  }

  // Ends the answer being written: `note` is shown under it, `spoken` (default: the note) is
  // announced once.
  function finishCurrent(note, isError, spoken) {
    if (!current) return;
    const article = current.article;
    cancelAnimationFrame(current.frame);
    renderBody(article, current.text);
    article.classList.remove("streaming");
    article.setAttribute("aria-busy", "false");
    if (note) setNote(article, note, isError);
    else {
      const old = article.querySelector(".msg-note");
      if (old) old.remove();
    }
    announce(spoken || note);
    current = null;
  }

  function scheduleRender() {
    if (!current || current.frame) return;
    current.frame = requestAnimationFrame(() => {
      if (!current) return;
      current.frame = 0;
      renderBody(current.article, current.text);
      scrollDown();
    });
  }

  function handle(event) {
    switch (event.type) {
      case "queued": {
        if (!current) break;
        const waiting = "Waiting for the model — position " + event.position + " in the queue.";
        setNote(current.article, waiting);
        // Said once per answer; the position counting down is only shown.
        if (!current.queued) announce(waiting);
        current.queued = true;
        break;
      }
      case "sources":
        if (!current) break;
        buildSources(current.article, event.sources || []);
        setNote(current.article, event.sources && event.sources.length ? "Writing…" : "");
        break;
      case "token":
        if (!current) break;
        current.text += event.text;
        if (current.article.querySelector(".msg-note")) setNote(current.article, "Writing…");
        scheduleRender();
        break;
      case "done": {
        if (!current) break;
        const article = current.article;
        article.dataset.messageId = event.message;
        article.dataset.status = event.status || "complete";
        article.classList.add("msg-" + (event.status || "complete"));
        if (event.status === "stopped") finishCurrent("Stopped before the end.", false, "Answer stopped.");
        else finishCurrent("", false, "Answer complete.");
        addFooter(article, event.stats);
        setBusy(false);
        setStatus("");
        scrollDown();
        break;
      }
      case "error":
        if (current) {
          finishCurrent(event.message, true);
          current = null;
          setBusy(false);
        } else {
          setStatus(event.message, true);
        }
        break;
      default:
        break;
    }
  }

  composer.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = question.value.trim();
    if (!text || busy || !socket || socket.readyState !== WebSocket.OPEN) return;
    question.value = "";
    setStatus("");
    ask(text);
  });
  question.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      composer.requestSubmit();
    }
  });
  stopButton.addEventListener("click", () => {
    if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ type: "stop" }));
  });
  regenerateButton.addEventListener("click", () => {
    if (busy || !socket || socket.readyState !== WebSocket.OPEN) return;
    startAnswer();
    const frame = { type: "regenerate" };
    if (settingsForm) frame.params = readSettings();
    socket.send(JSON.stringify(frame));
    setBusy(true);
    scrollDown();
  });

  connect();
  scrollDown();
})();
