/* kb chat client: websocket streaming, safe markdown, citations, settings, feedback.
 *
 * Protocol: docs/websocket-protocol.md. No build step, no dependencies. What an answer shows,
 * live or saved: the evidence quote ("From your documents") above it, its passages with their
 * highlighted sentences, and the sentences the grounding check did not find in the sources
 * flagged. Live answers fall back gracefully when the server sends none of these.
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

  // Forms with data-confirm (delete conversation) ask first: static/kb/site.js.

  // Enter sends, Shift+Enter starts a new line: the start page's question box and the
  // conversation's composer alike.
  function sendOnEnter(textarea, form) {
    if (!textarea || !form) return;
    textarea.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        form.requestSubmit();
      }
    });
  }
  const startForm = document.getElementById("start-form");
  sendOnEnter(document.getElementById("start-question"), startForm);
  if (startForm) {
    // One conversation per question, however often Enter is pressed while the page loads.
    startForm.addEventListener("submit", (event) => {
      if (startForm.dataset.sent) event.preventDefault();
      startForm.dataset.sent = "1";
    });
    // Coming back with the browser's Back button restores the page as it was: ask again.
    window.addEventListener("pageshow", () => delete startForm.dataset.sent);
  }

  // On narrow screens the conversation list folds away behind a button (site.css).
  const sidebarToggle = document.getElementById("sidebar-toggle");
  if (sidebarToggle) {
    sidebarToggle.addEventListener("click", () => {
      const body = document.getElementById(sidebarToggle.getAttribute("aria-controls"));
      const open = sidebarToggle.getAttribute("aria-expanded") !== "true";
      sidebarToggle.setAttribute("aria-expanded", String(open));
      body.classList.toggle("open", open);
    });
  }

  /* ---------------------------------------------------------------------------------------
   * Markdown, safely: a small subset (paragraphs, fenced code, inline code, bold, italic,
   * bullet and numbered lists, headings as bold lines) built as DOM nodes from plain text.
   * Citation markers [n] (also [1, 2]) become buttons when passage n exists.
   *
   * `ctx.cite` maps each passage number to the button's accessible name. `ctx.flags` lists
   * the answer's unsupported sentences as {start, end, i} ranges of the (newline-normalised)
   * source text: every piece of text the renderer writes knows its offset in the source, so
   * a flagged sentence is wrapped in <span class="unsupported"> wherever markdown put it
   * (a paragraph, a list item, bold text, code).
   * ------------------------------------------------------------------------------------- */

  const INLINE = /(`[^`\n]+`)|(\*\*[^*\n]+?\*\*)|(__[^_\n]+?__)|(\*[^*\s][^*\n]*?\*)|(\b_[^_\s][^_\n]*?_\b)|(\[\d{1,3}(?:\s*,\s*\d{1,3})*\])/g;

  // Appends `text`, which starts at offset `base` of the source, splitting it where flagged
  // sentences begin and end.
  function emitText(text, parent, ctx, base) {
    const flags = ctx.flags;
    if (!flags || !flags.length) {
      parent.appendChild(document.createTextNode(text));
      return;
    }
    let pos = 0;
    while (pos < text.length) {
      const at = base + pos;
      const flag = flags.find((f) => f.start <= at && at < f.end);
      let stop;
      if (flag) {
        stop = Math.min(text.length, flag.end - base);
        const span = el("span", "unsupported", text.slice(pos, stop));
        span.dataset.sentence = String(flag.i);
        span.title = "Not found in the sources";
        parent.appendChild(span);
      } else {
        const next = flags.reduce((min, f) => (f.start > at && f.start < min ? f.start : min), Infinity);
        stop = Math.min(text.length, next - base);
        parent.appendChild(document.createTextNode(text.slice(pos, stop)));
      }
      pos = stop;
    }
  }

  function citeButton(n, label) {
    const button = el("button", "cite", String(n));
    button.type = "button";
    button.dataset.n = String(n);
    // "Source 2: Handbook, page 3" rather than a bare "2".
    button.setAttribute("aria-label", label);
    button.title = label;
    return button;
  }

  function renderInline(text, parent, ctx, base) {
    let last = 0;
    const pattern = new RegExp(INLINE.source, "g"); // own lastIndex: this function recurses
    let match;
    while ((match = pattern.exec(text)) !== null) {
      if (match.index > last) emitText(text.slice(last, match.index), parent, ctx, base + last);
      const token = match[0];
      const at = base + match.index;
      if (match[1]) {
        const code = el("code");
        emitText(token.slice(1, -1), code, ctx, at + 1);
        parent.appendChild(code);
      } else if (match[2] || match[3]) {
        const strong = el("strong");
        renderInline(token.slice(2, -2), strong, ctx, at + 2);
        parent.appendChild(strong);
      } else if (match[4] || match[5]) {
        const em = el("em");
        renderInline(token.slice(1, -1), em, ctx, at + 1);
        parent.appendChild(em);
      } else {
        const numbers = token.slice(1, -1).split(",").map((s) => parseInt(s.trim(), 10));
        const cite = ctx.cite;
        if (cite && numbers.every((n) => cite.has(n))) {
          numbers.forEach((n) => parent.appendChild(citeButton(n, cite.get(n))));
        } else {
          emitText(token, parent, ctx, at);
        }
      }
      last = match.index + token.length;
    }
    if (last < text.length) emitText(text.slice(last), parent, ctx, base + last);
  }

  function renderMarkdown(source, ctx) {
    const fragment = document.createDocumentFragment();
    const lines = source.split("\n");
    const starts = []; // offset of each line in `source`
    lines.reduce((offset, line) => (starts.push(offset), offset + line.length + 1), 0);
    let paragraph = []; // line numbers
    let list = null;

    function flushParagraph() {
      if (!paragraph.length) return;
      const p = el("p");
      paragraph.forEach((n, i) => {
        if (i) p.appendChild(document.createElement("br"));
        renderInline(lines[n], p, ctx, starts[n]);
      });
      fragment.appendChild(p);
      paragraph = [];
    }
    function flushList() {
      list = null;
    }
    // Where `part`, the tail of line n that a pattern captured, starts in the source.
    function tail(n, part) {
      return starts[n] + lines[n].length - part.length;
    }

    for (let i = 0; i < lines.length; i++) {
      const line = lines[i];
      const fence = line.match(/^\s*(```|~~~)\s*([\w+-]*)\s*$/);
      if (fence) {
        flushParagraph();
        flushList();
        const first = i + 1;
        const code = [];
        i++;
        while (i < lines.length && !lines[i].trim().startsWith(fence[1])) code.push(lines[i++]);
        const pre = el("pre");
        const codeNode = el("code");
        emitText(code.join("\n"), codeNode, ctx, first < lines.length ? starts[first] : source.length);
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
        const text = bullet ? bullet[1] : numbered[2];
        renderInline(text, item, ctx, tail(i, text));
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
        renderInline(heading[1], strong, ctx, tail(i, heading[1]));
        p.appendChild(strong);
        fragment.appendChild(p);
        continue;
      }
      if (list && /^\s{2,}\S/.test(line)) {
        // continuation of the previous list item
        list.lastChild.appendChild(document.createTextNode(" "));
        renderInline(line.trim(), list.lastChild, ctx, starts[i] + line.length - line.trimStart().length);
        continue;
      }
      flushList();
      paragraph.push(i);
    }
    flushParagraph();
    return fragment;
  }

  /* ---------------------------------------------------------------------------------------
   * Grounding (the `done` event's and a saved answer's `grounding`): the answer's sentences
   * in order, each {text, supported, sources}. Unsupported ones are tinted, underlined and
   * followed by a "not found in the sources" label: text, so not colour alone, and read out.
   * ------------------------------------------------------------------------------------- */

  // The unsupported sentences as ranges of `text`, or null when one of them cannot be found
  // in it (the caller then shows the sentences one by one, so no flag is ever lost).
  function locateFlags(text, grounding) {
    const flags = [];
    let cursor = 0;
    for (let i = 0; i < grounding.length; i++) {
      const sentence = String((grounding[i] && grounding[i].text) || "").trim();
      if (!sentence) continue;
      const at = text.indexOf(sentence, cursor);
      if (at < 0) {
        if (grounding[i].supported === false) return null;
        continue;
      }
      if (grounding[i].supported === false) flags.push({ start: at, end: at + sentence.length, i: i });
      cursor = at + sentence.length;
    }
    return flags;
  }

  function flagLabel() {
    const label = el("small", "unsupported-label");
    label.append(el("span", "visually-hidden", " ("), "not found in the sources", el("span", "visually-hidden", ")"));
    return label;
  }

  // One label after the last piece of each flagged sentence.
  function addFlagLabels(root) {
    const last = new Map();
    root.querySelectorAll("span.unsupported").forEach((span) => last.set(span.dataset.sentence, span));
    last.forEach((span) => span.after(flagLabel()));
    return last.size;
  }

  // An answer whose flagged sentences could not be placed in its markdown: one paragraph of
  // sentences, flags intact.
  function renderSentences(grounding, ctx) {
    const p = el("p");
    grounding.forEach((sentence, i) => {
      if (i) p.appendChild(document.createTextNode(" "));
      const text = String(sentence.text || "");
      if (sentence.supported === false) {
        renderInline(text, p, { cite: ctx.cite, flags: [{ start: 0, end: text.length, i: i }] }, 0);
      } else {
        renderInline(text, p, { cite: ctx.cite, flags: [] }, 0);
      }
    });
    const fragment = document.createDocumentFragment();
    fragment.appendChild(p);
    return fragment;
  }

  // The answer `text` as DOM nodes; with `grounding`, its unsupported sentences flagged.
  // Returns {fragment, flagged: number of flagged sentences}.
  function renderAnswer(text, cite, grounding) {
    const source = text.replace(/\r\n?/g, "\n");
    const ctx = { cite: cite, flags: [] };
    let fragment;
    if (Array.isArray(grounding) && grounding.length) {
      const flags = locateFlags(source, grounding);
      if (flags === null) fragment = renderSentences(grounding, ctx);
      else {
        ctx.flags = flags;
        fragment = renderMarkdown(source, ctx);
      }
    } else {
      fragment = renderMarkdown(source, ctx);
    }
    return { fragment: fragment, flagged: addFlagLabels(fragment) };
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

  // Renders an answer (or question) body; returns how many sentences were flagged.
  function renderBody(article, text, grounding) {
    const body = article.querySelector(".msg-body");
    body.dataset.raw = text;
    const rendered = renderAnswer(text, citationLabels(article), grounding);
    body.replaceChildren(rendered.fragment);
    body.classList.add("rendered");
    body.classList.toggle("has-unsupported", rendered.flagged > 0);
    return rendered.flagged;
  }

  /* ------------------------------------------------------------------------------------ */
  /* Passage panel: a modal <dialog> (Escape closes it natively)                            */

  const panel = document.getElementById("passage-panel");
  let opener = null; // {button, article, n}: where focus goes back when the panel closes

  // A source's `highlight` as "start-end,start-end" (the form of a source list entry's
  // data-hl and of the document page's ?hl=): offsets in code points, end exclusive.
  function highlightRanges(highlight) {
    return (Array.isArray(highlight) ? highlight : [])
      .filter((h) => h && Number.isInteger(h.start) && Number.isInteger(h.end) && 0 <= h.start && h.start < h.end)
      .map((h) => h.start + "-" + h.end)
      .join(",");
  }

  // Parses data-hl for a text of `length` code points: sorted, in range, not overlapping.
  function parseRanges(value, length) {
    const ranges = [];
    String(value || "")
      .split(",")
      .forEach((part) => {
        const m = part.trim().match(/^(\d+)-(\d+)$/);
        if (!m) return;
        const start = parseInt(m[1], 10);
        const end = parseInt(m[2], 10);
        if (start < end && end <= length) ranges.push([start, end]);
      });
    ranges.sort((a, b) => a[0] - b[0]);
    return ranges.filter((r, i) => i === 0 || r[0] >= ranges[i - 1][1]);
  }

  // Fills `node` with `text`, the `ranges` (in code points: Array.from splits a string into
  // code points, as the server counts) wrapped in <mark>.
  function fillHighlighted(node, text, ranges) {
    const chars = Array.from(text);
    const parts = [];
    let last = 0;
    parseRanges(ranges, chars.length).forEach(([start, end]) => {
      if (start > last) parts.push(chars.slice(last, start).join(""));
      parts.push(el("mark", null, chars.slice(start, end).join("")));
      last = end;
    });
    if (last < chars.length) parts.push(chars.slice(last).join(""));
    node.replaceChildren(...parts);
  }

  // The document page at the passage, its highlighted sentences marked; "" when the
  // document is gone (or the page does not know where documents live).
  function documentLink(item) {
    const id = item.dataset.document;
    if (!id || !config.documentUrl) return "";
    let url = config.documentUrl.replace(config.idPlaceholder, id);
    const ordinal = item.dataset.ordinal;
    if (ordinal === undefined || ordinal === "") return url;
    url += "?chunk=" + encodeURIComponent(ordinal);
    if (item.dataset.hl) url += "&hl=" + encodeURIComponent(item.dataset.hl);
    return url + "#chunk-" + encodeURIComponent(ordinal);
  }

  function openPassage(article, n, button) {
    const item = article && article.querySelector('.sources li[data-n="' + n + '"]');
    if (!item || !panel) return;
    document.getElementById("passage-n").textContent = "Passage [" + n + "]";
    document.getElementById("passage-title").textContent = item.dataset.title || "";
    document.getElementById("passage-location").textContent = item.dataset.location || "";
    const text = document.getElementById("passage-text");
    fillHighlighted(text, item.querySelector(".passage-text").textContent, item.dataset.hl);
    const link = document.getElementById("passage-document");
    if (link) {
      const href = documentLink(item);
      link.hidden = !href;
      if (href) link.href = href;
      else link.removeAttribute("href");
    }
    opener = { button: button, article: article, n: n };
    if (!panel.open) panel.showModal();
    document.getElementById("passage-close").focus();
    const mark = text.querySelector("mark");
    if (mark) mark.scrollIntoView({ block: "nearest" });
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
      li.dataset.document = source.document || "";
      li.dataset.ordinal = source.ordinal === null || source.ordinal === undefined ? "" : String(source.ordinal);
      li.dataset.hl = highlightRanges(source.highlight);
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

  // The `evidence` event: the best source sentence, quoted above the answer with its [n].
  // templates/chat/_message.html renders the same for a saved answer.
  function showEvidence(article, text, n) {
    const old = article.querySelector(".evidence");
    if (old) old.remove();
    if (!text) return;
    const figure = el("figure", "evidence");
    figure.appendChild(el("figcaption", "evidence-label", "From your documents"));
    const quote = el("blockquote", "evidence-quote");
    quote.appendChild(el("span", "evidence-text", text));
    const label = citationLabels(article).get(n);
    if (label) quote.append(" ", citeButton(n, label));
    figure.appendChild(quote);
    article.querySelector(".msg-body").before(figure);
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

  function savedGrounding(article) {
    const data = article.querySelector(".msg-grounding script");
    if (!data) return null;
    try {
      return JSON.parse(data.textContent);
    } catch (error) {
      return null;
    }
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
    // Server-rendered history: turn plain text into safe markdown, flagging the sentences
    // that the saved grounding check found unsupported.
    list.querySelectorAll(".msg").forEach((article) => {
      const body = article.querySelector(".msg-body");
      renderBody(article, body.textContent, savedGrounding(article));
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

  // Shown under a complete answer that did not end on its own; templates/chat/_message.html
  // has the same sentences.
  const FINISH_NOTES = {
    loop: "Cut short: the model started repeating itself.",
    length: "Cut short: the answer reached its maximum length.",
  };

  const CLOSE_REASONS = {
    4401: "You are signed out. Sign in again to continue.",
    4404: "This conversation no longer exists.",
    4429: "Too many chat tabs are open: close some and reload this page.",
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
    current = { article: article, text: "", frame: 0, queued: false, grounding: null };
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
    const flagged = renderBody(article, current.text, current.grounding);
    article.classList.remove("streaming");
    article.setAttribute("aria-busy", "false");
    if (note) setNote(article, note, isError);
    else {
      const old = article.querySelector(".msg-note");
      if (old) old.remove();
    }
    let said = spoken || note;
    if (flagged) {
      said += " " + (flagged === 1 ? "1 sentence was" : flagged + " sentences were") + " not found in the sources.";
    }
    announce(said);
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
      case "evidence":
        if (!current || typeof event.text !== "string") break;
        showEvidence(current.article, event.text, event.source);
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
        // The saved answer replaces the streamed one: citations added, a loop cut off.
        if (typeof event.content === "string") current.text = event.content;
        if (Array.isArray(event.grounding)) current.grounding = event.grounding;
        if (event.status === "stopped") finishCurrent("Stopped before the end.", false, "Answer stopped.");
        else finishCurrent(FINISH_NOTES[event.finish_reason] || "", false, "Answer complete.");
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
  sendOnEnter(question, composer);
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
