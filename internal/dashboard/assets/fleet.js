// The fleet page: counts per state (click to filter), search, one page of
// agents at a time from GET /health/agents, updated from GET /v1/events.
"use strict";

(() => {
  const { api, el, stateChip, stateFrom, timeEl, progressBar } = BW;
  // Worst first, as the API orders agents.
  const ORDER = ["failed", "stalled", "missing", "recovering", "healthy", "stopped"];
  const LIMIT = 50;

  const params = new URLSearchParams(location.search);
  let filter = { state: params.get("state") || "", search: params.get("search") || "" };
  let cursors = [""]; // cursor of each page shown so far; the last is the current one
  let counts = null;
  let next = "";
  const qInput = document.getElementById("q");
  qInput.value = filter.search;

  // The search box takes words of the id and type:NAME, host:NAME.
  function query(cursor) {
    const p = new URLSearchParams();
    if (filter.state) p.set("state", filter.state);
    const words = [];
    for (const w of filter.search.trim().split(/\s+/)) {
      if (!w) continue;
      const m = w.match(/^(type|host):(.+)$/);
      if (m) p.set(m[1], m[2]);
      else words.push(w);
    }
    if (words.length) p.set("q", words.join(" "));
    p.set("limit", String(LIMIT));
    if (cursor) p.set("cursor", cursor);
    return p.toString();
  }

  function keepURL() {
    const p = new URLSearchParams();
    if (filter.state) p.set("state", filter.state);
    if (filter.search) p.set("search", filter.search);
    const s = p.toString();
    history.replaceState(null, "", location.pathname + (s ? "?" + s : ""));
  }

  let loading = null;
  let again = false;
  async function load() {
    // One load at a time; a request meanwhile runs once more after it.
    if (loading) {
      again = true;
      return loading;
    }
    loading = (async () => {
      do {
        again = false;
        const body = await api("health/agents?" + query(cursors[cursors.length - 1]));
        if (!body) continue;
        if (body.error) {
          showError(body.error);
          continue;
        }
        counts = body;
        next = body.next || "";
        renderCounts();
        renderRows(body.agents);
        renderPager(body.agents.length);
      } while (again);
      loading = null;
    })();
    return loading;
  }

  let soon = 0;
  function loadSoon() {
    // Many transitions at once make one request.
    if (!soon) soon = setTimeout(() => { soon = 0; load(); }, 150);
  }

  function renderCounts() {
    const nav = document.getElementById("counts");
    nav.replaceChildren();
    const all = el("button", "chip all" + (filter.state ? "" : " on"));
    all.type = "button";
    all.append(el("b", "", String(counts.total)), " agents");
    all.addEventListener("click", () => setState(""));
    nav.append(all);
    for (const s of ORDER) {
      const b = el("button", "chip " + s + (filter.state === s ? " on" : "") + (counts[s] ? "" : " zero"));
      b.type = "button";
      b.dataset.state = s;
      b.setAttribute("aria-pressed", String(filter.state === s));
      b.append(el("b", "", String(counts[s] || 0)), " " + s);
      b.addEventListener("click", () => setState(filter.state === s ? "" : s));
      nav.append(b);
    }
  }

  function setState(s) {
    filter.state = s;
    cursors = [""];
    keepURL();
    load();
  }

  function showError(msg) {
    const tb = document.querySelector("#agents tbody");
    const td = el("td", "empty error", msg);
    td.colSpan = 10;
    const tr = el("tr");
    tr.append(td);
    tb.replaceChildren(tr);
  }

  function lastRecovery(steps) {
    if (!steps || !steps.length) return "";
    const s = steps[steps.length - 1];
    return s.step + ": " + s.result + (s.error ? " (" + s.error + ")" : "");
  }

  function row(a) {
    const tr = el("tr");
    tr.dataset.id = a.agentId;
    tr.dataset.state = a.state;
    const id = el("td", "c-id");
    const link = el("a", "", a.agentId);
    link.href = "agents/" + encodeURIComponent(a.agentId);
    id.append(link);
    tr.append(id);

    const st = el("td", "c-state");
    st.append(stateChip(a.state), " ", timeEl(stateFrom(a), "for"));
    const why = a.state === "stalled" ? a.stallReason || a.stateReason : a.state === "healthy" ? "" : a.stateReason;
    if (why) st.append(el("div", "why", why));
    tr.append(st);

    const beat = el("td", "c-beat");
    beat.append(timeEl(a.lastHeartbeat, "ago"));
    tr.append(beat);

    const task = el("td", "c-task");
    if (a.currentTask) task.append(el("div", "task", a.currentTask));
    if (a.taskProgress !== null && a.taskProgress !== undefined) task.append(progressBar(a.taskProgress));
    tr.append(task);

    const m = a.metrics || {};
    tr.append(el("td", "c-num", (m.cpuPercent || 0).toFixed(1)));
    tr.append(el("td", "c-num", String(Math.round(m.memoryMB || 0))));
    tr.append(el("td", "c-more", a.agentType));
    tr.append(el("td", "c-more", a.host));
    tr.append(el("td", "c-more", String(a.restarts || 0)));
    tr.append(el("td", "c-more", lastRecovery(a.recoveries)));
    return tr;
  }

  function renderRows(agents) {
    const tb = document.querySelector("#agents tbody");
    if (!agents.length) {
      const filtered = filter.state || filter.search;
      showError(filtered ? "No agent matches." : "No agent has beaten yet. Start one with beatwrap --watcher http://" + location.host + " -- COMMAND");
      return;
    }
    tb.replaceChildren(...agents.map(row));
  }

  function renderPager(n) {
    const page = cursors.length;
    document.getElementById("first").hidden = page === 1;
    document.getElementById("next").hidden = !next;
    const shown = filter.state ? counts[filter.state] : counts.total;
    document.getElementById("pageinfo").textContent =
      n ? "Page " + page + ": agents " + ((page - 1) * LIMIT + 1) + "–" + ((page - 1) * LIMIT + n) +
        (filter.search ? "" : " of " + shown) : "";
  }

  document.getElementById("next").addEventListener("click", () => {
    if (!next) return;
    cursors.push(next);
    load();
  });
  document.getElementById("first").addEventListener("click", () => {
    cursors = [""];
    load();
  });
  let typing = 0;
  qInput.addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(() => {
      filter.search = qInput.value;
      cursors = [""];
      keepURL();
      load();
    }, 200);
  });
  document.getElementById("search").addEventListener("submit", (e) => e.preventDefault());

  // A transition changes its row at once (and the counts); the page is
  // then fetched again, since order, counts and membership may change.
  function transition(ev) {
    const tr = document.querySelector('#agents tr[data-id="' + CSS.escape(ev.agentId) + '"]');
    if (tr) {
      const st = tr.querySelector(".c-state");
      const at = Date.parse(ev.at);
      st.replaceChildren(stateChip(ev.to), " ", timeEl(at, "for"));
      if (ev.reason && ev.to !== "healthy") st.append(el("div", "why", ev.reason));
      tr.dataset.state = ev.to;
      tr.classList.remove("flash");
      void tr.offsetWidth; // restart the animation
      tr.classList.add("flash");
    }
    if (counts) {
      if (ev.from && counts[ev.from] > 0) counts[ev.from]--;
      else if (!ev.from) counts.total++;
      // "forgotten": the watcher dropped the agent; it is in no state.
      if (ev.to === "forgotten") counts.total = Math.max(0, counts.total - 1);
      else counts[ev.to] = (counts[ev.to] || 0) + 1;
      renderCounts();
    }
    loadSoon();
  }

  const live = document.getElementById("live");
  BW.onreconnect = load;
  BW.stream("", (name, data) => {
    if (name === "open") {
      live.textContent = "live";
      live.className = "live on";
    } else if (name === "transition") {
      transition(data);
    } else if (name === "reload") {
      load();
    }
  });
  // Metrics and last beats change without transitions.
  setInterval(() => { if (!document.hidden) load(); }, 5000);
  document.addEventListener("visibilitychange", () => { if (!document.hidden) load(); });
  const offline = new MutationObserver(() => {
    if (document.body.classList.contains("offline")) {
      live.textContent = "offline";
      live.className = "live off";
    }
  });
  offline.observe(document.body, { attributes: true, attributeFilter: ["class"] });
  load();
})();
