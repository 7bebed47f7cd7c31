// Report an agent's progress to beatwrap. No packages, only node:net: copy this file.
//
//   const { report } = require('./beatwrap-report');
//
//   await report({ task: 'summarise ticket 4312', progress: 40, activeTasks: 1, queueDepth: 7 });
//   await report({ tokens: 1850 });           // adds to the tokens of the last hour
//   await report({ error: 'rate limited' });  // counts one error in the last 5 minutes
//   await report({ quietFor: '20m' });        // a long silent step is coming
//   await report({ idle: true });             // no work: a silent agent is not stalled
//
//   const { checkpoint, lastCheckpoint } = require('./beatwrap-report');
//   const state = (await lastCheckpoint()) ?? { step: 0 }; // where the last incarnation stopped
//   await checkpoint({ step: state.step + 1 });            // any JSON value; null clears it
//
// beatwrap gives the agent it runs the path of its progress socket in
// $BEATWRAP_SOCKET. report() sends the fields as one JSON line on a connection
// it keeps open and resolves to beatwrap's reply: {ok: true} or {ok: false,
// error: '...'}. Without BEATWRAP_SOCKET (the agent runs without beatwrap) it
// does nothing and resolves to null. It never rejects and waits at most 2
// seconds: monitoring must not break the agent. The connection does not keep
// the process alive while no report is on its way.
//
// checkpoint(value) stores value (any JSON value, within 64 KiB) as the
// agent's checkpoint; beatwrap hands it to the agent's next start, in place or
// after beatwrap itself was restarted with the same id. lastCheckpoint() (also
// exported as last_checkpoint) resolves to the last one, decoded: what beatwrap
// holds now, else what it handed this process at start ($BEATWRAP_CHECKPOINT),
// else null.
'use strict';

const net = require('node:net');

const TIMEOUT_MS = 2000; // beatwrap answers in well under a millisecond

let conn = null; // {socket, fail}: the kept connection, null until the first report or after an error
let waiting = []; // resolvers of the reports sent on conn, oldest first
let buffered = '';

function connect(path) {
  const c = net.createConnection(path);
  c.setEncoding('utf8');
  c.unref();
  c.on('data', (chunk) => {
    buffered += chunk;
    let nl;
    while ((nl = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      const next = waiting.shift();
      if (!next) continue;
      let reply;
      try {
        reply = JSON.parse(line);
      } catch (e) {
        reply = { ok: false, error: `read reply: ${e.message}` };
      }
      next(reply);
    }
    if (waiting.length === 0) c.unref();
  });
  const kept = { socket: c, fail: null };
  kept.fail = (why) => {
    if (conn !== kept) return;
    // Replies still to come would be matched to the wrong reports: start over.
    conn = null;
    buffered = '';
    const pending = waiting;
    waiting = [];
    c.destroy();
    for (const resolve of pending) resolve({ ok: false, error: why });
  };
  c.on('error', (e) => kept.fail(`progress socket: ${e.message}`));
  c.on('close', () => kept.fail('beatwrap closed the connection'));
  return kept;
}

function report(fields) {
  const path = process.env.BEATWRAP_SOCKET;
  if (!path) return Promise.resolve(null);
  let line;
  try {
    line = JSON.stringify(fields) + '\n';
  } catch (e) {
    return Promise.resolve({ ok: false, error: `cannot encode report: ${e.message}` });
  }
  if (conn === null) conn = connect(path);
  const { socket, fail } = conn;
  return new Promise((resolve) => {
    const timer = setTimeout(() => fail(`no reply within ${TIMEOUT_MS} ms`), TIMEOUT_MS);
    timer.unref();
    waiting.push((reply) => {
      clearTimeout(timer);
      resolve(reply);
    });
    socket.ref(); // a reply is on its way: let the process wait for it
    socket.write(line);
  });
}

function checkpoint(value) {
  return report({ checkpoint: value === undefined ? null : value });
}

async function lastCheckpoint() {
  const reply = await report({ query: 'checkpoint' });
  if (reply && reply.ok) return reply.checkpoint ?? null;
  // Without beatwrap, or no answer: what beatwrap handed us at start.
  const env = process.env.BEATWRAP_CHECKPOINT;
  if (env) {
    try {
      return JSON.parse(env);
    } catch (e) {
      // not JSON: nothing to resume from
    }
  }
  return null;
}

module.exports = { report, checkpoint, lastCheckpoint, last_checkpoint: lastCheckpoint };
