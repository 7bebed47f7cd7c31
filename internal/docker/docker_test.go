package docker

import (
	"archive/tar"
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/client"
)

// These tests drive the real Docker Engine. Nothing can be pulled, so they
// build their own image: FROM scratch with a static busybox.

const testLabel = "beatwrap.test"

var testImage = fmt.Sprintf("beatwrap-test/recover:%d", os.Getpid())

func TestMain(m *testing.M) {
	code := m.Run()
	if engine.e != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_, _ = engine.e.c.ImageRemove(ctx, testImage, client.ImageRemoveOptions{Force: true, PruneChildren: true})
		cancel()
		engine.e.Close()
	}
	os.Exit(code)
}

var engine struct {
	once sync.Once
	e    *mobyAPI
	skip string // why the tests cannot run
}

// needDocker returns the engine with the test image built, or skips the
// test (fails it when CI=true) when there is no engine or no busybox.
func needDocker(t *testing.T) *mobyAPI {
	t.Helper()
	engine.once.Do(func() { engine.skip = setUpDocker() })
	if engine.skip != "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("docker engine needed: %s", engine.skip)
		}
		t.Skipf("docker engine needed: %s", engine.skip)
	}
	return engine.e
}

func setUpDocker() string {
	if os.Getenv("DOCKER_HOST") == "" {
		if _, err := os.Stat("/var/run/docker.sock"); err != nil {
			return "no /var/run/docker.sock and no DOCKER_HOST"
		}
	}
	e, err := dialAPI("", os.Getenv)
	if err != nil {
		return err.Error()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := e.Ping(ctx); err != nil {
		return err.Error()
	}
	engine.e = e
	busybox, err := staticBusybox()
	if err != nil {
		return err.Error() + " (apt-get install -y busybox-static)"
	}
	if err := buildImage(ctx, e.c, busybox); err != nil {
		return err.Error()
	}
	return ""
}

// staticBusybox finds a statically linked busybox: one that needs no
// dynamic loader can run in an empty image.
func staticBusybox() ([]byte, error) {
	for _, p := range []string{"/bin/busybox", "/usr/bin/busybox"} {
		f, err := elf.Open(p)
		if err != nil {
			continue
		}
		dynamic := slices.ContainsFunc(f.Progs, func(p *elf.Prog) bool { return p.Type == elf.PT_INTERP })
		f.Close()
		if !dynamic {
			return os.ReadFile(p)
		}
	}
	return nil, errors.New("no statically linked busybox in /bin or /usr/bin")
}

func buildImage(ctx context.Context, c *client.Client, busybox []byte) error {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	files := []struct {
		name string
		mode int64
		body []byte
	}{
		{"Dockerfile", 0o644, []byte("FROM scratch\nCOPY busybox /bin/busybox\nENTRYPOINT [\"/bin/busybox\"]\n")},
		{"busybox", 0o755, busybox},
	}
	for _, f := range files {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.body))}); err != nil {
			return err
		}
		if _, err := tw.Write(f.body); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	res, err := c.ImageBuild(ctx, &buf, client.ImageBuildOptions{Tags: []string{testImage}, Remove: true, ForceRemove: true})
	if err != nil {
		return fmt.Errorf("build %s: %w", testImage, err)
	}
	defer res.Body.Close()
	dec := json.NewDecoder(res.Body)
	for {
		var msg struct {
			Error string `json:"error"`
		}
		if err := dec.Decode(&msg); err == io.EOF {
			return nil
		} else if err != nil {
			return fmt.Errorf("build %s: %w", testImage, err)
		}
		if msg.Error != "" {
			return fmt.Errorf("build %s: %s", testImage, msg.Error)
		}
	}
}

// box describes a test container.
type box struct {
	agent   string
	label   bool // carries the recover label
	image   string
	cmd     string
	policy  container.RestartPolicyMode
	mounts  []mount.Mount
	volumes []string
	labels  map[string]string // more labels
	// owner, when set, replaces the beatwatch.agent label: "" leaves the
	// container without it.
	owner *string
	env   []string
}

// startBox creates and starts a test container; it and every container of
// its agent are removed when the test ends.
func startBox(t *testing.T, e *mobyAPI, b box) Container {
	t.Helper()
	ctx := context.Background()
	labels := map[string]string{testLabel: "1", AgentLabel: b.agent}
	if b.owner != nil {
		delete(labels, AgentLabel)
		if *b.owner != "" {
			labels[AgentLabel] = *b.owner
		}
	}
	if b.label {
		labels["beatwatch.recover"] = "true"
	}
	maps.Copy(labels, b.labels)
	if b.image == "" {
		b.image = testImage
	}
	if b.cmd == "" {
		b.cmd = "sleep 600"
	}
	cfg := &container.Config{
		Image: b.image, Cmd: []string{"sh", "-c", b.cmd}, Labels: labels,
		Env: append([]string{"BEATWRAP_TEST=" + b.agent}, b.env...), WorkingDir: "/bin",
		Volumes: map[string]struct{}{},
	}
	for _, v := range b.volumes {
		cfg.Volumes[v] = struct{}{}
	}
	host := &container.HostConfig{NetworkMode: "host", Mounts: b.mounts, RestartPolicy: container.RestartPolicy{Name: b.policy}}
	name := fmt.Sprintf("beatwrap-test-%s-%d", b.agent, time.Now().UnixNano()%1e6)
	id, err := e.Create(ctx, name, cfg, host, nil)
	if err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
	t.Cleanup(func() { removeAgent(t, e, b.agent, id) })
	if err := e.Start(ctx, id); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	if b.owner != nil {
		return Container{ID: id, Name: name, Agent: b.agent}
	}
	d := newDocker(t, e)
	c, err := d.Find(ctx, b.agent, id)
	if err != nil {
		t.Fatalf("find %s: %v", name, err)
	}
	return c
}

// removeAgent removes every container of agent (and id), with their
// volumes.
func removeAgent(t *testing.T, e *mobyAPI, agent, id string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ids := []string{id}
	list, err := e.List(ctx, AgentLabel, agent)
	if err != nil {
		t.Errorf("cleanup: list %s: %v", agent, err)
	}
	for _, c := range list {
		ids = append(ids, c.ID)
	}
	var volumes []string
	for _, id := range ids {
		if info, err := e.Inspect(ctx, id); err == nil {
			for _, m := range info.Mounts {
				if m.Type == mount.TypeVolume {
					volumes = append(volumes, m.Name)
				}
			}
		}
		_, err := e.c.ContainerRemove(ctx, id, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
		if err != nil && !errors.Is(mapErr(err), ErrNotFound) {
			t.Errorf("cleanup: remove %s: %v", short(id), err)
		}
	}
	for _, v := range volumes {
		_, _ = e.c.VolumeRemove(ctx, v, client.VolumeRemoveOptions{Force: true})
	}
}

func newDocker(t *testing.T, e api) *Engine {
	t.Helper()
	d, err := newEngine(e, Config{RestartingWait: 2 * time.Second, PollInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// waitState waits until the container is in state.
func waitState(t *testing.T, e *mobyAPI, id string, state container.ContainerState) container.InspectResponse {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		info, err := e.Inspect(context.Background(), id)
		if err != nil {
			t.Fatalf("inspect %s: %v", short(id), err)
		}
		if info.State.Status == state {
			return info
		}
		select {
		case <-deadline:
			t.Fatalf("container %s is %s, waited for %s", short(id), info.State.Status, state)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func kill(t *testing.T, e *mobyAPI, id string) {
	t.Helper()
	if _, err := e.c.ContainerKill(context.Background(), id, client.ContainerKillOptions{Signal: "KILL"}); err != nil {
		t.Fatalf("kill %s: %v", short(id), err)
	}
	waitState(t, e, id, container.StateExited)
}

func TestDockerFind(t *testing.T) {
	e := needDocker(t)
	ctx := context.Background()
	d := newDocker(t, e)
	c := startBox(t, e, box{agent: "find-1", label: true})
	gone := strings.Repeat("0", 64)

	tests := []struct {
		name, agent, id string
		wantErr         error
	}{
		{"full id", "find-1", c.ID, nil},
		{"short id", "find-1", c.ID[:12], nil},
		{"label", "find-1", "", nil},
		{"id gone, label", "find-1", gone, nil},
		{"nothing", "find-nobody", "", ErrNotFound},
		{"id gone, no label", "find-nobody", gone, ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := d.Find(ctx, tt.agent, tt.id)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Find = %+v, %v; want %v", got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Find: %v", err)
			}
			if got.ID != c.ID || !got.Eligible || got.State != "running" || got.Image != testImage || got.Agent != tt.agent || !strings.HasPrefix(got.Name, "beatwrap-test-find-1") {
				t.Fatalf("Find = %+v", got)
			}
		})
	}

	t.Run("not an id", func(t *testing.T) {
		// A name would be looked up by the engine; only ids are taken.
		if _, err := d.Find(ctx, "find-1", c.Name); err == nil {
			t.Fatalf("Find by name %q worked, want an error", c.Name)
		}
	})

	t.Run("ambiguous", func(t *testing.T) {
		startBox(t, e, box{agent: "find-2", label: true})
		startBox(t, e, box{agent: "find-2", label: true})
		if _, err := d.Find(ctx, "find-2", ""); !errors.Is(err, ErrAmbiguous) {
			t.Fatalf("Find = %v, want ErrAmbiguous", err)
		}
	})
}

func TestOwner(t *testing.T) {
	tests := []struct {
		name string
		cfg  *container.Config
		want bool
	}{
		{"label", &container.Config{Labels: map[string]string{AgentLabel: "a-1"}}, true},
		{"label of another", &container.Config{Labels: map[string]string{AgentLabel: "victim"}, Env: []string{"BEATWRAP_ID=a-1"}}, false},
		{"env", &container.Config{Env: []string{"PATH=/bin", "BEATWRAP_ID=a-1"}}, true},
		{"env of another", &container.Config{Env: []string{"BEATWRAP_ID=a-10"}}, false},
		{"--id", &container.Config{Entrypoint: []string{"/beatwrap"}, Cmd: []string{"--redis", "redis://r", "--id", "a-1", "--", "agent"}}, true},
		{"--id=", &container.Config{Cmd: []string{"/beatwrap", "--id=a-1", "--", "agent"}}, true},
		{"--id of the agent's own command", &container.Config{Cmd: []string{"/beatwrap", "--", "agent", "--id", "a-1"}}, false},
		{"nothing", &container.Config{Cmd: []string{"sleep", "600"}}, false},
		{"no config", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			why, got := Owner("a-1", tt.cfg)
			if got != tt.want || why == "" {
				t.Errorf("Owner = %q, %v; want %v with a reason", why, got, tt.want)
			}
		})
	}
}

// TestDockerFindRefusesWhatIsNotTheAgents: a beat that names another
// agent's container (or one that names no agent) finds nothing to act on,
// and says why; the container named by the beat is found only when its own
// configuration names the agent.
func TestDockerFindRefusesWhatIsNotTheAgents(t *testing.T) {
	e := needDocker(t)
	ctx := context.Background()
	d := newDocker(t, e)
	victim := startBox(t, e, box{agent: "own-victim", label: true})
	none := ""
	anon := startBox(t, e, box{agent: "own-anon", label: true, owner: &none})
	byEnv := startBox(t, e, box{agent: "own-env", label: true, owner: &none, env: []string{"BEATWRAP_ID=own-env"}})

	if got, err := d.Find(ctx, "own-att", victim.ID); !errors.Is(err, ErrNotOwned) || !strings.Contains(err.Error(), `names another agent`) {
		t.Errorf("Find(att, victim's container) = %+v, %v; want ErrNotOwned naming the label", got, err)
	}
	if got, err := d.Find(ctx, "own-att", anon.ID[:12]); !errors.Is(err, ErrNotOwned) {
		t.Errorf("Find(att, unnamed container) = %+v, %v; want ErrNotOwned", got, err)
	}
	if got, err := d.Find(ctx, "own-env", byEnv.ID); err != nil || got.ID != byEnv.ID {
		t.Errorf("Find(own-env, its container) = %+v, %v; want it, named by BEATWRAP_ID", got, err)
	}
	if got, err := d.Find(ctx, "own-victim", victim.ID); err != nil || got.ID != victim.ID {
		t.Errorf("Find(victim, its container) = %+v, %v", got, err)
	}
	// Every action looks again: a Container made up by hand is refused.
	forged := Container{ID: victim.ID, Agent: "own-att"}
	if err := d.Restart(ctx, forged, time.Second); !errors.Is(err, ErrNotOwned) {
		t.Errorf("Restart of a container that is not the agent's = %v, want ErrNotOwned", err)
	}
	if _, err := d.Replace(ctx, forged, time.Second); !errors.Is(err, ErrNotOwned) {
		t.Errorf("Replace of a container that is not the agent's = %v, want ErrNotOwned", err)
	}
	info, err := e.Inspect(ctx, victim.ID)
	if err != nil || info.State.StartedAt != waitState(t, e, victim.ID, container.StateRunning).State.StartedAt || info.RestartCount != 0 {
		t.Errorf("the victim's container was touched: %+v %v", info.State, err)
	}
}

func TestDockerNotEligible(t *testing.T) {
	e := needDocker(t)
	ctx := context.Background()
	d := newDocker(t, e)
	c := startBox(t, e, box{agent: "plain-1"})
	kill(t, e, c.ID)
	before := waitState(t, e, c.ID, container.StateExited)

	got, err := d.Find(ctx, "plain-1", "")
	if err != nil || got.ID != c.ID || got.Eligible {
		t.Fatalf("Find = %+v, %v; want the container, not eligible", got, err)
	}
	if _, v, err := d.Check(ctx, got, false); v != VerdictNotEligible || err != nil {
		t.Fatalf("Check = %s, %v", v, err)
	}
	if err := d.Restart(ctx, got, time.Second); !errors.Is(err, ErrNotEligible) {
		t.Fatalf("Restart = %v; want ErrNotEligible", err)
	}
	if res, err := d.Replace(ctx, got, time.Second); !errors.Is(err, ErrNotEligible) || res.ID != "" {
		t.Fatalf("Replace = %+v, %v; want ErrNotEligible", res, err)
	}
	after, err := e.Inspect(ctx, c.ID)
	if err != nil {
		t.Fatalf("inspect after: %v", err)
	}
	if after.State.Status != container.StateExited || after.State.StartedAt != before.State.StartedAt || after.Name != before.Name {
		t.Fatalf("container touched: %s started %s name %s", after.State.Status, after.State.StartedAt, after.Name)
	}
}

func TestDockerRestart(t *testing.T) {
	e := needDocker(t)
	ctx := context.Background()
	d := newDocker(t, e)
	c := startBox(t, e, box{agent: "restart-1", label: true})
	kill(t, e, c.ID)

	c, v, err := d.Check(ctx, c, false)
	if v != VerdictCrashed || err != nil || c.ExitCode != 137 {
		t.Fatalf("Check = %s, %v, exit code %d; want crashed", v, err, c.ExitCode)
	}
	if err := d.Restart(ctx, c, time.Second); err != nil {
		t.Fatalf("Restart = %v", err)
	}
	info := waitState(t, e, c.ID, container.StateRunning)
	if info.ID != c.ID {
		t.Fatalf("restart changed the container: %s", info.ID)
	}

	t.Run("removed", func(t *testing.T) {
		removeAgent(t, e, "restart-1", c.ID)
		if _, v, err := d.Check(ctx, c, false); v != VerdictRemoved || err != nil {
			t.Fatalf("Check = %s, %v; want removed", v, err)
		}
		if err := d.Restart(ctx, c, time.Second); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Restart = %v; want ErrNotFound", err)
		}
	})
}

func TestDockerVerdicts(t *testing.T) {
	e := needDocker(t)
	ctx := context.Background()
	d := newDocker(t, e)
	stop := func(t *testing.T, id string) {
		zero := 0
		if err := e.Stop(ctx, id, &zero); err != nil {
			t.Fatalf("stop: %v", err)
		}
	}
	tests := []struct {
		name         string
		policy       container.RestartPolicyMode
		do           func(t *testing.T, id string)
		finalStopped bool
		want         Verdict
	}{
		{"running", "", func(*testing.T, string) {}, false, VerdictRunning},
		{"operator stop", "", stop, true, VerdictOperatorStopped},
		{"stop without final beat", "", stop, false, VerdictCrashed},
		{"stop under always", container.RestartPolicyAlways, stop, false, VerdictOperatorStopped},
		{"paused", "", func(t *testing.T, id string) {
			if _, err := e.c.ContainerPause(ctx, id, client.ContainerPauseOptions{}); err != nil {
				t.Fatalf("pause: %v", err)
			}
		}, false, VerdictPaused},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := startBox(t, e, box{agent: fmt.Sprintf("verdict-%d", i), label: true, policy: tt.policy})
			tt.do(t, c.ID)
			_, v, err := d.Check(ctx, c, tt.finalStopped)
			if v != tt.want || err != nil {
				t.Fatalf("Check = %s, %v; want %s", v, err, tt.want)
			}
		})
	}
}

func TestDockerReplace(t *testing.T) {
	e := needDocker(t)
	ctx := context.Background()
	d := newDocker(t, e)
	c := startBox(t, e, box{agent: "replace-1", label: true, volumes: []string{"/data"}})
	old, err := e.Inspect(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}

	// A stalled agent: its container still runs.
	res, err := d.Replace(ctx, c, time.Second)
	if err != nil || res.Detail != "replaced "+c.ShortID() {
		t.Fatalf("Replace = %+v, %v", res, err)
	}
	if res.ID == "" || res.ID == c.ID {
		t.Fatalf("Replace named container %q", res.ID)
	}
	if _, err := e.Inspect(ctx, c.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("old container still there: %v", err)
	}
	nu := waitState(t, e, res.ID, container.StateRunning)

	if nu.Name != old.Name {
		t.Errorf("name %s, want %s", nu.Name, old.Name)
	}
	if nu.Config.Image != testImage || nu.Image != old.Image {
		t.Errorf("image %s (%s), want %s (%s)", nu.Config.Image, nu.Image, testImage, old.Image)
	}
	if !slices.Equal(nu.Config.Cmd, old.Config.Cmd) || !slices.Equal(nu.Config.Entrypoint, old.Config.Entrypoint) ||
		!slices.Equal(nu.Config.Env, old.Config.Env) || nu.Config.WorkingDir != old.Config.WorkingDir {
		t.Errorf("config %+v, want %+v", nu.Config, old.Config)
	}
	if nu.Config.Hostname != old.Config.Hostname {
		t.Errorf("hostname %s, want the old %s", nu.Config.Hostname, old.Config.Hostname)
	}
	for k, v := range old.Config.Labels {
		if nu.Config.Labels[k] != v {
			t.Errorf("label %s=%q, want %q", k, nu.Config.Labels[k], v)
		}
	}
	if nu.Config.Labels[ReplacesLabel] != c.ID {
		t.Errorf("label %s=%q, want %s", ReplacesLabel, nu.Config.Labels[ReplacesLabel], c.ID)
	}
	if nu.HostConfig.NetworkMode != "host" {
		t.Errorf("network mode %s", nu.HostConfig.NetworkMode)
	}
	volume := func(info container.InspectResponse) string {
		for _, m := range info.Mounts {
			if m.Destination == "/data" {
				return m.Name
			}
		}
		return ""
	}
	if volume(nu) == "" || volume(nu) != volume(old) {
		t.Errorf("volume at /data %q, want the old %q", volume(nu), volume(old))
	}
	// The agent's beats still name the old container; the label finds the
	// new one.
	if got, err := d.Find(ctx, "replace-1", c.ID); err != nil || got.ID != res.ID {
		t.Errorf("Find after replace = %+v, %v", got, err)
	}
}

func TestDockerReplaceFromImageID(t *testing.T) {
	e := needDocker(t)
	ctx := context.Background()
	d := newDocker(t, e)
	tag := testImage + "-moved"
	if _, err := e.c.ImageTag(ctx, client.ImageTagOptions{Source: testImage, Target: tag}); err != nil {
		t.Fatalf("tag: %v", err)
	}
	c := startBox(t, e, box{agent: "replace-2", label: true, image: tag})
	kill(t, e, c.ID)
	// The tag is gone (untagged, or moved to a newer image): the
	// replacement runs the image the old container ran.
	if _, err := e.c.ImageRemove(ctx, tag, client.ImageRemoveOptions{}); err != nil {
		t.Fatalf("untag: %v", err)
	}
	res, err := d.Replace(ctx, c, time.Second)
	if err != nil {
		t.Fatalf("Replace = %+v, %v", res, err)
	}
	nu := waitState(t, e, res.ID, container.StateRunning)
	old, _ := e.ImageID(ctx, testImage)
	if nu.Image != old || !strings.HasPrefix(nu.Config.Image, "sha256:") {
		t.Fatalf("image %s (%s), want %s by id", nu.Config.Image, nu.Image, old)
	}
}

// startFails is the real engine, except that starting any container but
// keep fails.
type startFails struct {
	*mobyAPI
	keep string
}

func (e startFails) Start(ctx context.Context, id string) error {
	if id != e.keep {
		return errors.New("injected start failure")
	}
	return e.mobyAPI.Start(ctx, id)
}

func TestDockerReplaceFails(t *testing.T) {
	e := needDocker(t)
	ctx := context.Background()

	tests := []struct {
		name    string
		running bool
		setup   func(t *testing.T) ([]mount.Mount, func())
		engine  func(keep string) api
		wantErr string
	}{
		{
			name: "create fails",
			setup: func(t *testing.T) ([]mount.Mount, func()) {
				dir := filepath.Join(t.TempDir(), "src")
				if err := os.Mkdir(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				// The bind source vanishes: the engine refuses to create
				// a container with it.
				return []mount.Mount{{Type: mount.TypeBind, Source: dir, Target: "/mnt"}}, func() { os.RemoveAll(dir) }
			},
			engine:  func(string) api { return e },
			wantErr: "create replacement",
		},
		{
			name:    "start fails",
			running: true,
			setup:   func(*testing.T) ([]mount.Mount, func()) { return nil, func() {} },
			engine:  func(keep string) api { return startFails{e, keep} },
			wantErr: "injected start failure",
		},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mounts, breakIt := tt.setup(t)
			agent := fmt.Sprintf("replace-fail-%d", i)
			c := startBox(t, e, box{agent: agent, label: true, mounts: mounts})
			if !tt.running {
				kill(t, e, c.ID)
			}
			before, err := e.Inspect(ctx, c.ID)
			if err != nil {
				t.Fatal(err)
			}
			breakIt()
			d := newDocker(t, tt.engine(c.ID))
			res, err := d.Replace(ctx, c, time.Second)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || res.ID != "" {
				t.Fatalf("Replace = %+v, %v; want an error with %q", res, err, tt.wantErr)
			}
			after, err := e.Inspect(ctx, c.ID)
			if err != nil {
				t.Fatalf("old container gone: %v", err)
			}
			if after.Name != before.Name {
				t.Errorf("old container named %s, want %s back", after.Name, before.Name)
			}
			if got := after.State.Running; got != tt.running {
				t.Errorf("old container running=%v, want %v as before", got, tt.running)
			}
			list, err := e.List(ctx, AgentLabel, agent)
			if err != nil || len(list) != 1 || list[0].ID != c.ID {
				t.Errorf("containers of %s: %d (%v), want only the old one", agent, len(list), err)
			}
		})
	}
}
