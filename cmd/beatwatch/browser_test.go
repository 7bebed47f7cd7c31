package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/beatwrap/beatwrap/internal/testutil"
)

// TestWebPageCannotPostBeats opens, in a real browser (headless Chromium),
// a page on another origin that tries every way a page has to POST a beat
// to a watcher on the user's machine without a token: fetch with a
// text/plain body (a "simple" request, sent without asking first), fetch
// with application/json, and a form. None of the beats may get in, while a
// local process's application/json POST still does.
func TestWebPageCannotPostBeats(t *testing.T) {
	browser := ""
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			browser = p
			break
		}
	}
	if browser == "" {
		testutil.Unavailable(t, "no chromium in PATH")
	}
	w := startWatcher(t)
	beat := func(id string) string {
		return fmt.Sprintf(`{"agentId":%q,"status":"exited","intervalMs":3600000,"containerId":"%s"}`, id, strings.Repeat("ab", 32))
	}

	done := make(chan string, 1)
	page := `<!doctype html><html><body>
<form id="f" method="POST" enctype="text/plain" action="` + w.base + `/v1/beats" target="sink">
<input name='` + strings.TrimSuffix(beat("web-form"), "}") + `,"x":"' value='"}'></form>
<iframe name="sink"></iframe>
<script>
const url = ` + "`" + w.base + "/v1/beats`" + `;
async function attack() {
  const results = [];
  for (const [name, opts] of [
    ["plain", {method: "POST", mode: "no-cors", headers: {"Content-Type": "text/plain"}, body: ` + "`" + beat("web-plain") + "`" + `}],
    ["json", {method: "POST", headers: {"Content-Type": "application/json"}, body: ` + "`" + beat("web-json") + "`" + `}],
  ]) {
    try { await fetch(url, opts); results.push(name + ":sent"); } catch (e) { results.push(name + ":" + e); }
  }
  document.getElementById("f").submit();
  await new Promise(r => setTimeout(r, 1000));
  await fetch("/done?r=" + encodeURIComponent(results.join(",")));
}
attack();
</script></body></html>`
	evil := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/done" {
			select {
			case done <- r.URL.Query().Get("r"):
			default:
			}
			return
		}
		rw.Header().Set("Content-Type", "text/html")
		fmt.Fprint(rw, page)
	}))
	defer evil.Close()

	// Not t.TempDir: Chromium's helper processes may still write into its
	// profile after the kill, and a folder that cannot be removed then would
	// fail the test. The whole process group is killed, the folder removed
	// as far as it goes.
	profile, err := os.MkdirTemp("", "bwchrome")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(browser, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
		"--disable-extensions", "--user-data-dir="+profile, evil.URL+"/")
	cmd.Stdout, cmd.Stderr = os.Stderr, nil
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", browser, err)
	}
	defer func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
		_ = os.RemoveAll(profile)
	}()
	select {
	case r := <-done:
		t.Logf("the page says: %s", r)
	case <-time.After(60 * time.Second):
		t.Fatal("the page did not finish within 60s")
	}

	for _, id := range []string{"web-plain", "web-json", "web-form"} {
		if a, ok := w.agent(id); ok {
			t.Errorf("a web page on another origin posted beat %s: %+v", id, a)
		}
	}
	if refused := w.logLines("cross-origin browser request refused"); len(refused) == 0 {
		t.Errorf("no refusal logged; stderr:\n%s", w.stderr)
	}
	// A local process needs no token and no browser headers.
	code, body := request(t, http.MethodPost, w.base+"/v1/beats", "", []byte(beat("local-1")))
	if code != http.StatusAccepted {
		t.Fatalf("local POST = %d %s, want 202", code, body)
	}
	if _, ok := w.agent("local-1"); !ok {
		t.Errorf("the local process's beat was not taken")
	}
}
