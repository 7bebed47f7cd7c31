// An example agent that tells beatwrap what it is doing.
//
//   beatwrap --stall-timeout 2m -- node agent.js
//
// It works through tickets, reporting the task, its progress and the tokens it
// spends; without beatwrap it runs the same and reports nothing. AGENT_TASKS
// bounds the number of tickets (default: forever), AGENT_STEP_SECONDS sets the
// length of a step (default 2).
'use strict';

const { report } = require('./beatwrap-report');

const TOKENS_PER_STEP = 100;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function workOn(ticket, stepMs) {
  await report({ task: `summarise ticket ${ticket}`, progress: 0, activeTasks: 1 });
  for (let step = 1; step <= 4; step++) {
    await sleep(stepMs); // a model call, a tool call...
    const reply = await report({ progress: step * 25, tokens: TOKENS_PER_STEP });
    if (reply !== null && !reply.ok) console.error(`beatwrap refused a report: ${reply.error}`);
  }
  console.log(`done: ticket ${ticket}`);
}

async function main() {
  const tasks = Number(process.env.AGENT_TASKS || 0);
  const stepMs = 1000 * Number(process.env.AGENT_STEP_SECONDS || 2);
  for (let ticket = 4312; tasks === 0 || ticket < 4312 + tasks; ticket++) {
    await workOn(ticket, stepMs);
  }
  await report({ idle: true, activeTasks: 0, task: '' });
}

main();
