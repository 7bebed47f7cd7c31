// The agent page: state, current task, facts, CPU and memory over the last
// hour, and the timeline (state changes, recovery steps, restarts, alerts).
"use strict";

(() => {
  const { api, el, stateChip, stateFrom, timeEl, progressBar, span } = BW;
  const id = decodeURIComponent(location.pathname.split("/").pop());
  const path = "health/agents/" + encodeURIComponent(id);
  document.getElementById("agent-id").textContent = id;
  document.title = id + " · beatwatch";
  document.getElementById("json").href = "../" + path;

  async function load() {
    const [a, h] = await Promise.all([api(path), api("v1/agents/" + encodeURIComponent(id) + "/history")]);
    if (!a) return;
    if (a.error) {
      const head = document.getElementById("head");
      head.replaceChildren(el("p", "empty error", a.status === 404
        ? "The watcher does not know " + id + ": it never beat, or it was forgotten after a day failed or stopped."
        : a.error));
      return;
    }
    renderHead(a);
    renderTask(a);
    renderFacts(a);
    if (h && !h.error) {
      renderCharts(h);
      renderTimeline(h);
    }
  }

  function renderHead(a) {
    const head = document.getElementById("head");
    const p = el("p", "state-line");
    p.append(stateChip(a.state), " ", timeEl(stateFrom(a), "for"));
    const why = a.state === "stalled" && a.stallReason ? a.stallReason : a.stateReason;
    if (why) p.append(el("span", "why", " · " + why));
    head.replaceChildren(p);
  }

  function renderTask(a) {
    const t = document.getElementById("task");
    t.replaceChildren();
    if (!a.currentTask && (a.taskProgress === null || a.taskProgress === undefined)) {
      t.append(el("p", "muted", "No current task."));
      return;
    }
    t.append(el("h2", "", "Current task"));
    t.append(el("p", "task", a.currentTask || "(unnamed)"));
    if (a.taskProgress !== null && a.taskProgress !== undefined) {
      const row = el("p", "progress-row");
      row.append(progressBar(a.taskProgress), " " + Math.round(a.taskProgress) + "%");
      t.append(row);
    }
  }

  // checkpointAt reads the checkpoint's time from the agent, where the
  // watcher gives it (ms since the epoch or an RFC 3339 time).
  function checkpointAt(a) {
    const c = a.checkpoint;
    const v = a.checkpointAt || a.checkpointUpdatedAt || (c && typeof c === "object" && (c.at || c.updatedAt || c.savedAt));
    if (!v) return 0;
    return typeof v === "number" ? v : Date.parse(v) || 0;
  }

  function renderFacts(a) {
    const dl = document.querySelector("#facts dl");
    dl.replaceChildren();
    const add = (k, v) => {
      if (v === "" || v === undefined || v === null) return;
      dl.append(el("dt", "", k));
      const dd = el("dd");
      if (v instanceof Node) dd.append(v);
      else dd.textContent = String(v);
      dl.append(dd);
    };
    const m = a.metrics || {};
    add("last beat", timeEl(a.lastHeartbeat, "ago"));
    add("status (from the agent)", a.status);
    add("type", a.agentType);
    add("host", a.host);
    add("pid", a.pid || "");
    add("container", a.containerId ? a.containerId.slice(0, 12) : "none");
    add("interval", span(a.intervalMs) + " (" + a.intervalSource + "), failed after " + a.missedBeatsLimit + " missed");
    add("up", span((a.uptimeSeconds || 0) * 1000));
    add("restarts in place", a.restarts || 0);
    add("CPU", (m.cpuPercent || 0).toFixed(1) + " %");
    add("memory", Math.round(m.memoryMB || 0) + " MB");
    add("tokens this hour", m.tokensUsedThisHour || 0);
    add("errors (5 min)", m.errorsLast5Min || 0);
    add("active tasks / queue", (m.activeTasks || 0) + " / " + (m.queueDepth || 0));
    const cp = checkpointAt(a);
    if (cp) {
      const t = timeEl(cp, "ago");
      t.classList.add("checkpoint-age");
      add("checkpoint saved", t);
    }
    if (a.exitCode !== null && a.exitCode !== undefined) add("exit code", a.exitCode);
  }

  // chart draws one series as a small inline SVG: a line over the hour, the
  // highest value labelled.
  function chart(box, samples, key, stepMs, unit) {
    box.replaceChildren();
    if (!samples.length) {
      box.append(el("p", "muted", "No samples yet."));
      return;
    }
    const W = 300, H = 80, now = Date.now(), from = now - 3600 * 1000;
    const top = Math.max(1, ...samples.map((s) => s[key])) * 1.1;
    const ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", "0 0 " + W + " " + H);
    svg.setAttribute("preserveAspectRatio", "none");
    svg.setAttribute("role", "img");
    const x = (t) => ((t - from) / 3600000) * W;
    const y = (v) => H - (v / top) * (H - 4);
    const pts = samples.map((s) => x(s.at + stepMs / 2).toFixed(1) + "," + y(s[key]).toFixed(1));
    const area = document.createElementNS(ns, "polygon");
    const first = x(samples[0].at + stepMs / 2).toFixed(1), last = x(samples[samples.length - 1].at + stepMs / 2).toFixed(1);
    area.setAttribute("points", first + "," + H + " " + pts.join(" ") + " " + last + "," + H);
    area.setAttribute("class", "area");
    const line = document.createElementNS(ns, "polyline");
    line.setAttribute("points", pts.join(" "));
    line.setAttribute("class", "line");
    svg.append(area, line);
    const peak = Math.max(...samples.map((s) => s[key]));
    const cur = samples[samples.length - 1][key];
    svg.setAttribute("aria-label", "highest " + peak.toFixed(1) + " " + unit + ", latest " + cur.toFixed(1));
    const title = document.createElementNS(ns, "title");
    title.textContent = "highest " + peak.toFixed(1) + " " + unit + " in the last hour";
    svg.append(title);
    box.append(svg, el("div", "chart-legend", "latest " + cur.toFixed(1) + " " + unit + " · highest " + peak.toFixed(1) + " " + unit));
  }

  function renderCharts(h) {
    if (!h.tracked) {
      for (const b of ["cpu", "mem"]) {
        document.getElementById(b).replaceChildren(el("p", "muted", "This watcher keeps charts for a bounded set of agents, and this one is not among them."));
      }
      return;
    }
    chart(document.getElementById("cpu"), h.samples, "cpuPercent", h.stepMs, "%");
    chart(document.getElementById("mem"), h.samples, "memoryMB", h.stepMs, "MB");
  }

  function renderTimeline(h) {
    const ol = document.getElementById("timeline");
    ol.replaceChildren();
    if (!h.timeline.length) {
      ol.append(el("li", "muted", "Nothing happened since the watcher started."));
      return;
    }
    for (const e of h.timeline) {
      const li = el("li", "entry " + e.kind);
      li.append(timeEl(Date.parse(e.at), "ago"), " ");
      if (e.kind === "state") {
        if (e.from) li.append(stateChip(e.from), " → ");
        li.append(stateChip(e.to));
        if (e.reason) li.append(el("span", "why", " " + e.reason));
      } else if (e.kind === "recovery") {
        li.classList.add(e.result);
        li.append(el("b", "", (e.step === "alert" ? "alert" : "recovery: " + e.step)), " " + e.result);
        if (e.error) li.append(el("span", "why", " " + e.error));
      } else if (e.kind === "restart") {
        li.append(el("b", "", "restarted in place"), " by beatwrap (restart " + e.restarts + ")");
      }
      ol.append(li);
    }
  }

  const live = document.getElementById("live");
  BW.onreconnect = load;
  BW.stream("?agent=" + encodeURIComponent(id), (name) => {
    if (name === "open") {
      live.textContent = "live";
      live.className = "live on";
    } else {
      load();
    }
  });
  setInterval(() => { if (!document.hidden) load(); }, 5000);
  load();
})();
