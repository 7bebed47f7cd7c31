package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/beatwrap/beatwrap/internal/monitor"
	"github.com/beatwrap/beatwrap/internal/testutil"
)

// The dashboard in a real headless Chromium (Debian's chromium, driven over
// the DevTools protocol with chromedp), against the real beatwatch and
// beatwrap binaries.

// ArtifactsEnv names the folder the browser tests write their screenshots
// to; by default a folder under the system's temporary folder, named in the
// test log. It is kept after the test.
const ArtifactsEnv = "BEATWATCH_TEST_ARTIFACTS"

// browser starts a headless Chromium and returns its context and the errors
// its pages logged (console errors, uncaught exceptions, failed loads).
func browser(t *testing.T) (context.Context, func() []string) {
	t.Helper()
	path := ""
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			path = p
			break
		}
	}
	if path == "" {
		testutil.Unavailable(t, "no chromium on $PATH (scripts/test.sh installs it)")
	}
	// Not t.TempDir: Chromium's helper processes may still write there for a
	// moment after the browser is gone, and TempDir fails the test on that.
	profile, err := os.MkdirTemp("", "beatwatch-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // the tests may run as root, where the sandbox refuses to start
		chromedp.DisableGPU,
		chromedp.WindowSize(1400, 900),
		chromedp.UserDataDir(profile),
	)
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
		if err := os.RemoveAll(profile); err != nil {
			time.Sleep(500 * time.Millisecond) // cleanup only: let the helpers exit
			_ = os.RemoveAll(profile)
		}
	})
	var mu sync.Mutex
	var errs []string
	chromedp.ListenTarget(ctx, func(ev any) {
		mu.Lock()
		defer mu.Unlock()
		switch ev := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.APITypeError || ev.Type == runtime.APITypeAssert {
				var args []string
				for _, a := range ev.Args {
					args = append(args, string(a.Value)+a.Description)
				}
				errs = append(errs, "console.error: "+strings.Join(args, " "))
			}
		case *runtime.EventExceptionThrown:
			errs = append(errs, "exception: "+ev.ExceptionDetails.Error())
		case *log.EventEntryAdded:
			if ev.Entry.Level == log.LevelError {
				errs = append(errs, "log: "+ev.Entry.Text+" "+ev.Entry.URL)
			}
		}
	})
	// Start the browser now, so that the first step's bound covers the page
	// only. The first Run's context is the browser's whole life, so it gets
	// no timeout of its own; the wait for it is bounded here.
	started := make(chan error, 1)
	go func() { started <- chromedp.Run(ctx, log.Enable()) }()
	select {
	case err := <-started:
		if err != nil {
			t.Fatalf("start chromium %s: %v", path, err)
		}
	case <-time.After(60 * time.Second):
		cancel()
		t.Fatalf("chromium %s did not start within 60s", path)
	}
	return ctx, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), errs...)
	}
}

// step runs browser actions, failing the test with what after within.
func step(t *testing.T, ctx context.Context, within time.Duration, what string, actions ...chromedp.Action) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	if err := chromedp.Run(ctx, actions...); err != nil {
		t.Fatalf("%s (within %s): %v", what, within, err)
	}
}

// artifacts returns the folder screenshots go to, and says where in the log.
func artifacts(t *testing.T) string {
	t.Helper()
	dir := os.Getenv(ArtifactsEnv)
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "beatwatch-test-artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots in %s (set %s to change)", dir, ArtifactsEnv)
	return dir
}

// TestDashboardInChromium: the fleet page loads with no console error and
// with the token from the URL fragment, shows a real agent, shows its
// transition without a reload within a second, renders at 1400 and 420 px;
// the agent page shows the timeline; the page says when the watcher is gone.
func TestDashboardInChromium(t *testing.T) {
	ctx, consoleErrors := browser(t)
	w := startWatcher(t, "--token", "tok")
	w.token = "tok"
	agent := startAgent(t, "--watcher", w.base, "--token", "tok", "--id", "ui-agent", "--type", "ui",
		"--interval", "200ms", "--grace", "1s")
	stuck := startProc(t, "cmd/beatwrap", nil, "--log-format", "json", "--watcher", w.base, "--token", "tok",
		"--id", "ui-stuck", "--type", "ui", "--interval", "200ms", "--stall-timeout", "500ms", "--",
		"sh", "-c", `"$0" report --task "waiting on a tool call" --progress 30 --active 1; while kill -0 $PPID 2>/dev/null; do sleep 0.1; done`,
		testutil.Binary(t, "cmd/beatwrap"))
	_ = stuck
	w.waitState("ui-agent", monitor.Healthy, 10*time.Second)
	w.waitState("ui-stuck", monitor.Stalled, 10*time.Second)

	var shown string
	step(t, ctx, 20*time.Second, "fleet page shows ui-agent healthy",
		chromedp.Navigate(w.base+"/#token=tok"),
		chromedp.WaitVisible(`#agents tr[data-id="ui-agent"][data-state="healthy"]`),
		chromedp.WaitVisible(`#live.on`),
		chromedp.Text(`#counts`, &shown),
	)
	if !strings.Contains(shown, "2 agents") || !strings.Contains(shown, "1 stalled") {
		t.Errorf("counts show %q, want 2 agents, 1 stalled", shown)
	}
	var url string
	step(t, ctx, 5*time.Second, "read the URL", chromedp.Location(&url))
	if strings.Contains(url, "tok") {
		t.Errorf("the token stays in the URL: %s", url)
	}
	// The stall is dated from the agent's last progress, not its last beat.
	var stallFor string
	step(t, ctx, 5*time.Second, "stall age", chromedp.Text(`tr[data-id="ui-stuck"] .c-state time`, &stallFor))
	if !strings.HasPrefix(stallFor, "for ") {
		t.Errorf("stalled agent shows %q, want how long it has been stalled", stallFor)
	}

	// A mark in the page's window: a reload would wipe it.
	step(t, ctx, 5*time.Second, "mark the page", chromedp.Evaluate(`window.notReloaded = true`, nil))
	agent.signal(syscall.SIGTERM)
	start := time.Now()
	step(t, ctx, time.Second, "the stop appears within a second",
		chromedp.WaitVisible(`#agents tr[data-id="ui-agent"][data-state="stopped"]`))
	t.Logf("transition shown %s after SIGTERM", time.Since(start).Round(time.Millisecond))
	var still bool
	step(t, ctx, 5*time.Second, "check the mark", chromedp.Evaluate(`window.notReloaded === true`, &still))
	if !still {
		t.Error("the page was reloaded to show the transition")
	}

	dir := artifacts(t)
	for _, width := range []int64{1400, 420} {
		var png []byte
		step(t, ctx, 20*time.Second, fmt.Sprintf("screenshot at %d px", width),
			chromedp.EmulateViewport(width, 800),
			chromedp.Sleep(200*time.Millisecond), // layout after the resize; the screenshot is the artifact, not an assertion
			chromedp.FullScreenshot(&png, 100),
		)
		name := filepath.Join(dir, fmt.Sprintf("fleet-%d.png", width))
		if err := os.WriteFile(name, png, 0o644); err != nil {
			t.Fatal(err)
		}
		var overflow bool
		step(t, ctx, 5*time.Second, "page width",
			chromedp.Evaluate(`document.documentElement.scrollWidth > window.innerWidth + 1`, &overflow))
		if overflow {
			t.Errorf("at %d px the page is wider than the window (sideways scrolling)", width)
		}
	}
	step(t, ctx, 5*time.Second, "back to desktop width", chromedp.EmulateViewport(1400, 900))

	var timeline string
	step(t, ctx, 20*time.Second, "agent page shows the timeline",
		chromedp.Navigate(w.base+"/agents/ui-agent"),
		chromedp.WaitVisible(`#timeline li.entry.state`),
		chromedp.Text(`#timeline`, &timeline),
	)
	for _, want := range []string{"final beat: stopped", "first beat", "stopped", "healthy"} {
		if !strings.Contains(timeline, want) {
			t.Errorf("timeline %q lacks %q", timeline, want)
		}
	}
	step(t, ctx, 10*time.Second, "stalled agent's page: task, progress, chart",
		chromedp.Navigate(w.base+"/agents/ui-stuck"),
		chromedp.WaitVisible(`#task .bar`),
		chromedp.WaitVisible(`#cpu svg`),
	)
	if errs := consoleErrors(); len(errs) > 0 {
		t.Errorf("the pages logged errors:\n%s", strings.Join(errs, "\n"))
	}

	w.signal(syscall.SIGTERM)
	w.wait(10 * time.Second)
	var banner string
	step(t, ctx, 10*time.Second, "the page says the watcher is unreachable",
		chromedp.WaitVisible(`#banner.down`),
		chromedp.Text(`#banner`, &banner),
	)
	if !strings.Contains(banner, "unreachable") {
		t.Errorf("banner = %q, want it to say the watcher is unreachable", banner)
	}
}
