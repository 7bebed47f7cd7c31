// Shared by the fleet page and the agent page: the token, API calls, the
// event stream, times for people, and the "watcher unreachable" banner.
"use strict";

const BW = (() => {
  const root = document.body.dataset.root || "";
  const KEY = "beatwatch.token";

  // A token given as #token=… is kept for the tab and taken out of the URL,
  // so it is never sent in a request line or kept in history.
  const m = location.hash.match(/(?:^#|&)token=([^&]*)/);
  if (m) {
    sessionStorage.setItem(KEY, decodeURIComponent(m[1]));
    history.replaceState(null, "", location.pathname + location.search);
  }

  function headers() {
    const t = sessionStorage.getItem(KEY);
    return t ? { Authorization: "Bearer " + t } : {};
  }

  const banner = document.getElementById("banner");
  let downSince = 0;
  let needToken = false;

  function showBanner() {
    if (needToken) {
      banner.hidden = false;
      banner.className = "banner auth";
      banner.replaceChildren();
      const f = document.createElement("form");
      f.innerHTML = '<label>This beatwatch needs its token: <input type="password" autocomplete="off" required></label> <button>Use it</button>';
      f.addEventListener("submit", (e) => {
        e.preventDefault();
        sessionStorage.setItem(KEY, f.querySelector("input").value);
        needToken = false;
        showBanner();
        BW.onreconnect();
      });
      banner.append(f);
      return;
    }
    if (downSince) {
      banner.hidden = false;
      banner.className = "banner down";
      banner.textContent = "The watcher is unreachable since " + clock(downSince) +
        " (" + ago(downSince) + "); what you see may be out of date. Retrying…";
      return;
    }
    banner.hidden = true;
  }

  function setReachable(ok) {
    if (ok && downSince) {
      downSince = 0;
      showBanner();
    } else if (!ok && !downSince) {
      downSince = Date.now();
      showBanner();
    }
    document.body.classList.toggle("offline", !ok);
  }

  // api fetches a JSON path below the root; it returns null (and says so in
  // the banner) when the watcher cannot be reached or refuses.
  async function api(path) {
    let res;
    try {
      res = await fetch(root + path, { headers: headers(), cache: "no-store" });
    } catch (e) {
      setReachable(false);
      return null;
    }
    setReachable(true);
    if (res.status === 401) {
      needToken = true;
      showBanner();
      return null;
    }
    const body = await res.json().catch(() => null);
    if (!res.ok) {
      return { error: (body && body.error) || "HTTP " + res.status, status: res.status };
    }
    return body;
  }

  // stream reads GET /v1/events with fetch (EventSource cannot send the
  // token header) and calls on(name, data) per event, reconnecting for
  // ever. It calls BW.onreconnect after a gap, since events were missed.
  async function stream(query, on) {
    let first = true;
    for (;;) {
      const ctl = new AbortController();
      let idle;
      const arm = () => {
        clearTimeout(idle);
        // The server sends a keepalive every 15 s.
        idle = setTimeout(() => ctl.abort(), 40000);
      };
      try {
        arm();
        const res = await fetch(root + "v1/events" + query, { headers: headers(), cache: "no-store", signal: ctl.signal });
        if (res.status === 401) {
          needToken = true;
          showBanner();
          throw new Error("unauthorized");
        }
        if (!res.ok) throw new Error("HTTP " + res.status);
        setReachable(true);
        if (!first) BW.onreconnect();
        first = false;
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        let buf = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          arm();
          buf += value;
          let i;
          while ((i = buf.indexOf("\n\n")) >= 0) {
            const block = buf.slice(0, i);
            buf = buf.slice(i + 2);
            let name = "message", data = "";
            for (const line of block.split("\n")) {
              if (line.startsWith("event:")) name = line.slice(6).trim();
              else if (line.startsWith("data:")) data += line.slice(5).trim();
            }
            if (data) on(name, JSON.parse(data));
          }
        }
      } catch (e) {
        // fall through: reconnect
      }
      clearTimeout(idle);
      if (!needToken) {
        // A stream that ended cleanly may be a server restart: check.
        const ok = await fetch(root + "healthz", { cache: "no-store" }).then((r) => r.ok, () => false);
        setReachable(ok);
      }
      first = false;
      await new Promise((r) => setTimeout(r, 2000));
    }
  }

  // Times for people: "12 s ago", "3 min ago", "2 h ago", "4 days ago".
  function span(ms) {
    const s = Math.max(0, Math.round(ms / 1000));
    if (s < 60) return s + " s";
    const m = Math.floor(s / 60);
    if (m < 60) return m + " min";
    const h = Math.floor(m / 60);
    if (h < 48) return h + " h" + (h < 10 && m % 60 ? " " + (m % 60) + " min" : "");
    return Math.floor(h / 24) + " days";
  }
  function ago(ms) {
    if (!ms) return "never";
    const d = Date.now() - ms;
    return d < 1500 ? "just now" : span(d) + " ago";
  }
  function clock(ms) {
    return new Date(ms).toLocaleTimeString();
  }
  function absolute(ms) {
    if (!ms) return "";
    const d = new Date(ms);
    return d.toLocaleString() + " (" + d.toISOString() + ")";
  }

  // timeEl makes an element that shows a relative time and the absolute one
  // on hover; tick() keeps every such element current.
  function timeEl(ms, kind) {
    const t = document.createElement("time");
    t.dataset.ms = ms || 0;
    t.dataset.kind = kind || "ago";
    if (ms) t.dateTime = new Date(ms).toISOString();
    t.title = absolute(ms);
    t.textContent = render(t);
    return t;
  }
  function render(t) {
    const ms = Number(t.dataset.ms);
    if (t.dataset.kind === "for") return ms ? "for " + span(Date.now() - ms) : "";
    return ago(ms);
  }
  setInterval(() => {
    for (const t of document.querySelectorAll("time[data-ms]")) t.textContent = render(t);
    if (downSince) showBanner();
  }, 1000);

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = text;
    return e;
  }

  function stateChip(state) {
    return el("span", "s " + state, state);
  }

  // stateFrom is when the agent's trouble started: a stall counts from the
  // stall, as the agent reported it, not from its last beat.
  function stateFrom(a) {
    return (a.state === "stalled" && a.stallSince) || a.stateSince || 0;
  }

  function progressBar(p) {
    const bar = el("span", "bar");
    const fill = el("span", "fill");
    fill.style.width = Math.max(0, Math.min(100, p)) + "%";
    bar.append(fill);
    bar.title = Math.round(p) + "%";
    bar.setAttribute("role", "progressbar");
    bar.setAttribute("aria-valuenow", String(Math.round(p)));
    return bar;
  }

  return { root, api, stream, ago, span, absolute, timeEl, el, stateChip, stateFrom, progressBar, onreconnect() {} };
})();
