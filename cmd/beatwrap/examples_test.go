package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/beatwrap/beatwrap/internal/testutil"
	"github.com/beatwrap/beatwrap/internal/wire"
)

// The example clients in examples/ are run with the machine's python3 and
// node, under the real beatwrap, and their reports are looked for in the
// beats.

type example struct {
	name, runtime string
	agent         string // the example agent, from the repository root
	// reportThrice is a program that calls report three times, a few
	// milliseconds apart, and prints each reply on a line of its own.
	reportThrice string
}

var examples = []example{
	{
		name: "python", runtime: "python3", agent: "examples/python/agent.py",
		reportThrice: `import json, sys, time
sys.path.insert(0, sys.argv[1])
from beatwrap_report import report
for i in range(3):
    print(json.dumps(report(task="t%d" % i), separators=(",", ":")))
    time.sleep(0.05)`,
	},
	{
		name: "node", runtime: "node", agent: "examples/node/agent.js",
		reportThrice: `const { report } = require(process.argv[1] + '/beatwrap-report');
(async () => {
  for (let i = 0; i < 3; i++) {
    console.log(JSON.stringify(await report({ task: 't' + i })));
    await new Promise((r) => setTimeout(r, 50));
  }
})();`,
	},
}

// noBytecode keeps Python from writing __pycache__ into examples/.
const noBytecode = "PYTHONDONTWRITEBYTECODE=1"

// repoPath is a path in the repository; tests run in cmd/beatwrap.
func repoPath(t *testing.T, rel string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("..", "..", rel))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func needRuntime(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		testutil.Unavailable(t, "%s not found: the %s example client is not tested", name, name)
	}
}

// TestExampleAgents runs each example agent for two tickets under beatwrap:
// its task and progress show in the beats, and the final beat has every
// token it reported.
func TestExampleAgents(t *testing.T) {
	url := testutil.RedisURL(t)
	for _, ex := range examples {
		t.Run(ex.name, func(t *testing.T) {
			needRuntime(t, ex.runtime)
			bs := subscribe(t, url)
			args := beatArgs(url, bs, "example-"+ex.name, filepath.Join(shortDir(t), "s.sock"), "--stall-timeout", "1s", "--")
			r := startBeatwrap(t, []string{noBytecode, "AGENT_TASKS=2", "AGENT_STEP_SECONDS=0.1"}, append(args, ex.runtime, repoPath(t, ex.agent))...)

			mid := bs.next(10*time.Second, func(b wire.Beat) bool { return progressOf(b) > 0 })
			if !strings.HasPrefix(mid.CurrentTask, "summarise ticket ") || mid.Metrics.ActiveTasks != 1 || mid.Status != wire.StatusHealthy {
				t.Errorf("beat during the work: %s, want a ticket in hand, healthy", describe(mid))
			}
			if code := r.wait(15 * time.Second); code != 0 {
				t.Fatalf("exit code = %d, want 0; stderr:\n%s", code, r.stderr)
			}
			final := bs.next(5*time.Second, func(b wire.Beat) bool { return b.Status.Final() })
			// 2 tickets of 4 steps of 100 tokens.
			if final.Status != wire.StatusStopped || final.Metrics.TokensUsedThisHour != 800 || final.CurrentTask != "" || final.Metrics.ActiveTasks != 0 {
				t.Errorf("final beat: %s, want stopped with 800 tokens, no task in hand", describe(final))
			}
			if strings.Contains(r.stderr.String(), "refused") {
				t.Errorf("beatwrap refused a report of the example:\n%s", r.stderr)
			}
		})
	}
}

// TestExampleAgentsRunWithoutBeatwrap: without BEATWRAP_SOCKET the clients
// do nothing and the agent runs as it would.
func TestExampleAgentsRunWithoutBeatwrap(t *testing.T) {
	for _, ex := range examples {
		t.Run(ex.name, func(t *testing.T) {
			needRuntime(t, ex.runtime)
			cmd := exec.Command(ex.runtime, repoPath(t, ex.agent))
			cmd.Env = withEnv(cmd.Environ(), []string{noBytecode, "BEATWRAP_SOCKET", "AGENT_TASKS=1", "AGENT_STEP_SECONDS=0.01"})
			out, err := cmd.CombinedOutput()
			if err != nil || strings.TrimSpace(string(out)) != "done: ticket 4312" {
				t.Errorf("agent without beatwrap: %v, output %q, want one ticket done", err, out)
			}
		})
	}
}

// TestExampleClientsReconnect: when beatwrap closes the connection after a
// reply, the next report connects again and is delivered.
func TestExampleClientsReconnect(t *testing.T) {
	for _, ex := range examples {
		t.Run(ex.name, func(t *testing.T) {
			needRuntime(t, ex.runtime)
			sock := newFakeSocket(t, `{"ok":true}`, true)
			flag := "-c"
			if ex.runtime == "node" {
				flag = "-e"
			}
			cmd := exec.Command(ex.runtime, flag, ex.reportThrice, repoPath(t, filepath.Dir(ex.agent)))
			cmd.Env = withEnv(cmd.Environ(), []string{noBytecode, "BEATWRAP_SOCKET=" + sock.path})
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			if got, want := strings.Fields(string(out)), []string{`{"ok":true}`, `{"ok":true}`, `{"ok":true}`}; strings.Join(got, " ") != strings.Join(want, " ") {
				t.Errorf("replies = %q, want three ok", got)
			}
			if got := sock.got(); len(got) != 3 {
				t.Errorf("beatwrap received %q, want three reports", got)
			}
		})
	}
}

// resumeOnce is, per runtime, a program that prints its last checkpoint;
// without one it checkpoints {"n":1} and crashes, with one it checkpoints
// n+1 and prints the last checkpoint again.
var resumeOnce = map[string]string{
	"python": `import json, sys
sys.path.insert(0, sys.argv[1])
from beatwrap_report import checkpoint, last_checkpoint
cp = last_checkpoint()
print(json.dumps(cp, separators=(",", ":")), flush=True)
if cp is None:
    assert checkpoint({"n": 1})["ok"]
    sys.exit(1)
assert checkpoint({"n": cp["n"] + 1})["ok"]
print(json.dumps(last_checkpoint(), separators=(",", ":")), flush=True)`,
	"node": `const { checkpoint, last_checkpoint } = require(process.argv[1] + '/beatwrap-report');
(async () => {
  const cp = await last_checkpoint();
  console.log(JSON.stringify(cp));
  if (cp === null) {
    if (!(await checkpoint({ n: 1 })).ok) process.exit(3);
    process.exit(1);
  }
  if (!(await checkpoint({ n: cp.n + 1 })).ok) process.exit(3);
  console.log(JSON.stringify(await last_checkpoint()));
})();`,
}

// TestExampleClientsCheckpoint: a client's checkpoint reaches the next start
// of the agent, and last_checkpoint reads it back; without beatwrap,
// last_checkpoint is what BEATWRAP_CHECKPOINT says.
func TestExampleClientsCheckpoint(t *testing.T) {
	for _, ex := range examples {
		t.Run(ex.name, func(t *testing.T) {
			needRuntime(t, ex.runtime)
			flag := "-c"
			if ex.runtime == "node" {
				flag = "-e"
			}
			dir := repoPath(t, filepath.Dir(ex.agent))
			r := startBeatwrap(t, []string{noBytecode}, "--id", "resume-"+ex.name, "--restart", "on-failure", "--interval", "1s",
				"--", ex.runtime, flag, resumeOnce[ex.name], dir)
			if code := r.wait(20 * time.Second); code != 0 {
				t.Fatalf("exit code = %d; stderr:\n%s", code, r.stderr)
			}
			if got, want := strings.Fields(r.stdout.String()), []string{`null`, `{"n":1}`, `{"n":2}`}; strings.Join(got, " ") != strings.Join(want, " ") {
				t.Errorf("the runs printed %q, want %q", got, want)
			}

			cmd := exec.Command(ex.runtime, flag, `
import json, sys
sys.path.insert(0, sys.argv[1])
from beatwrap_report import last_checkpoint
print(json.dumps(last_checkpoint(), separators=(",", ":")))`, dir)
			if ex.runtime == "node" {
				cmd = exec.Command(ex.runtime, flag, `require(process.argv[1] + '/beatwrap-report').lastCheckpoint().then((cp) => console.log(JSON.stringify(cp)));`, dir)
			}
			cmd.Env = withEnv(cmd.Environ(), []string{noBytecode, "BEATWRAP_SOCKET", `BEATWRAP_CHECKPOINT={"n":7}`})
			out, err := cmd.CombinedOutput()
			if err != nil || strings.TrimSpace(string(out)) != `{"n":7}` {
				t.Errorf("without beatwrap: %v, output %q, want the value of BEATWRAP_CHECKPOINT", err, out)
			}
		})
	}
}
