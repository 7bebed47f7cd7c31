"""Report an agent's progress to beatwrap. Standard library only: copy this file.

    from beatwrap_report import report

    report(task="summarise ticket 4312", progress=40, active_tasks=1, queue_depth=7)
    report(tokens=1850)              # adds to the tokens of the last hour
    report(error="rate limited")     # counts one error in the last 5 minutes
    report(quiet_for="20m")          # a long silent step is coming
    report(idle=True)                # no work: a silent agent is not stalled

    from beatwrap_report import checkpoint, last_checkpoint

    state = last_checkpoint() or {"step": 0}   # where the last incarnation stopped
    checkpoint({"step": state["step"] + 1})    # any JSON value; None clears it

beatwrap gives the agent it runs the path of its progress socket in
$BEATWRAP_SOCKET. report() sends the fields as one JSON line on a connection it
keeps open, and returns beatwrap's reply: {"ok": True} or {"ok": False,
"error": "..."}. Without BEATWRAP_SOCKET (the agent runs without beatwrap) it
does nothing and returns None. It never raises and waits at most 2 seconds:
monitoring must not break the agent. It is safe to call from several threads.

checkpoint(value) stores value (anything json.dumps takes, within 64 KiB) as
the agent's checkpoint; beatwrap hands it to the agent's next start, in place
or after beatwrap itself was restarted with the same id. last_checkpoint()
returns the last one, decoded: what beatwrap holds now, else what it handed
this process at start ($BEATWRAP_CHECKPOINT), else None.
"""

import json
import os
import socket
import threading

__all__ = ["report", "checkpoint", "last_checkpoint"]

TIMEOUT = 2.0  # seconds; beatwrap answers in well under a millisecond

# snake_case spellings of the wire's camelCase fields
_ALIASES = {"active_tasks": "activeTasks", "queue_depth": "queueDepth", "quiet_for": "quietFor"}

_lock = threading.Lock()
_sock = None
_replies = None
_pid = None  # the process that opened _sock: a forked child opens its own


def report(**fields):
    """Send one progress report; return beatwrap's reply, or None without beatwrap."""
    return _send({_ALIASES.get(k, k): v for k, v in fields.items()})


def checkpoint(value):
    """Store value as the agent's checkpoint (None clears it); return beatwrap's reply, or None without beatwrap."""
    return _send({"checkpoint": value})


def last_checkpoint():
    """Return the agent's last checkpoint, decoded, or None when there is none."""
    reply = _send({"query": "checkpoint"})
    if reply and reply.get("ok"):
        return reply.get("checkpoint")
    # Without beatwrap, or no answer: what beatwrap handed us at start.
    env = os.environ.get("BEATWRAP_CHECKPOINT")
    if env:
        try:
            return json.loads(env)
        except ValueError:
            pass
    return None


def _send(obj):
    path = os.environ.get("BEATWRAP_SOCKET")
    if not path:
        return None
    try:
        line = (json.dumps(obj) + "\n").encode()
    except (TypeError, ValueError) as e:
        return {"ok": False, "error": "cannot encode report: %s" % e}
    global _sock, _replies, _pid
    with _lock:
        if _pid != os.getpid():
            # Inherited by fork: closing our copy leaves the parent's open.
            _close()
        for attempt in (1, 2):
            reused = _sock is not None
            try:
                if _sock is None:
                    _sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                    _sock.settimeout(TIMEOUT)
                    _sock.connect(path)
                    _replies = _sock.makefile("rb")
                    _pid = os.getpid()
                _sock.sendall(line)
            except OSError as e:
                _close()
                # A kept connection may have been closed by beatwrap; a send
                # on it fails before anything goes out, so sending the line
                # again on a new one cannot count it twice.
                if reused and attempt == 1:
                    continue
                return {"ok": False, "error": "send report: %s" % e}
            try:
                reply = _replies.readline()
                if not reply:
                    raise OSError("beatwrap closed the connection")
                return json.loads(reply)
            except (OSError, ValueError) as e:
                # The next reply read would not be this line's: start over.
                _close()
                return {"ok": False, "error": "read reply: %s" % e}


def _close():
    global _sock, _replies
    for f in (_replies, _sock):
        if f is not None:
            try:
                f.close()
            except OSError:
                pass
    _sock = _replies = None
