"""Report an agent's progress to beatwrap. Standard library only: copy this file.

    from beatwrap_report import report

    report(task="summarise ticket 4312", progress=40, active_tasks=1, queue_depth=7)
    report(tokens=1850)              # adds to the tokens of the last hour
    report(error="rate limited")     # counts one error in the last 5 minutes
    report(quiet_for="20m")          # a long silent step is coming
    report(idle=True)                # no work: a silent agent is not stalled

beatwrap gives the agent it runs the path of its progress socket in
$BEATWRAP_SOCKET. report() sends the fields as one JSON line on a connection it
keeps open, and returns beatwrap's reply: {"ok": True} or {"ok": False,
"error": "..."}. Without BEATWRAP_SOCKET (the agent runs without beatwrap) it
does nothing and returns None. It never raises and waits at most 2 seconds:
monitoring must not break the agent. It is safe to call from several threads.
"""

import json
import os
import socket
import threading

__all__ = ["report"]

TIMEOUT = 2.0  # seconds; beatwrap answers in well under a millisecond

# snake_case spellings of the wire's camelCase fields
_ALIASES = {"active_tasks": "activeTasks", "queue_depth": "queueDepth", "quiet_for": "quietFor"}

_lock = threading.Lock()
_sock = None
_replies = None
_pid = None  # the process that opened _sock: a forked child opens its own


def report(**fields):
    """Send one progress report; return beatwrap's reply, or None without beatwrap."""
    path = os.environ.get("BEATWRAP_SOCKET")
    if not path:
        return None
    fields = {_ALIASES.get(k, k): v for k, v in fields.items()}
    try:
        line = (json.dumps(fields) + "\n").encode()
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
