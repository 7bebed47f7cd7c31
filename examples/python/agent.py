"""An example agent that tells beatwrap what it is doing.

    beatwrap --stall-timeout 2m -- python3 agent.py

It works through tickets, reporting the task, its progress and the tokens it
spends; without beatwrap it runs the same and reports nothing. AGENT_TASKS
bounds the number of tickets (default: forever), AGENT_STEP_SECONDS sets the
length of a step (default 2).
"""

import os
import sys
import time

from beatwrap_report import report

TOKENS_PER_STEP = 100


def work_on(ticket, step_seconds):
    report(task="summarise ticket %d" % ticket, progress=0, active_tasks=1)
    for step in range(1, 5):
        time.sleep(step_seconds)  # a model call, a tool call...
        reply = report(progress=step * 25, tokens=TOKENS_PER_STEP)
        if reply is not None and not reply.get("ok"):
            print("beatwrap refused a report: %s" % reply.get("error"), file=sys.stderr)
    print("done: ticket %d" % ticket)


def main():
    tasks = int(os.environ.get("AGENT_TASKS", "0"))
    step_seconds = float(os.environ.get("AGENT_STEP_SECONDS", "2"))
    ticket = 4312
    while tasks == 0 or ticket < 4312 + tasks:
        work_on(ticket, step_seconds)
        ticket += 1
    report(idle=True, active_tasks=0, task="")


if __name__ == "__main__":
    main()
