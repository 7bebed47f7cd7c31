package docker

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"
)

// Default labels: the one a container needs before recovery touches it, and
// the one that names the agent it runs.
const (
	DefaultRecoverLabel = "beatwatch.recover=true"
	AgentLabel          = "beatwatch.agent"
	// NamespaceLabel names the fleet (beatwatch --namespace) a container
	// belongs to. A container that carries it is touched only by a
	// beatwatch of that namespace; one without it, by any.
	NamespaceLabel = "beatwatch.namespace"
)

// Errors of the ladder, matched with errors.Is.
var (
	// ErrNotEligible: the container lacks the recover label, or belongs to
	// another namespace; it is never touched.
	ErrNotEligible = errors.New("container is not eligible for recovery")
	// ErrAmbiguous: more than one container carries the agent's label, so
	// none of them is touched.
	ErrAmbiguous = errors.New("more than one container carries the agent label")
	// ErrNotOwned: the container a beat names is not provably the agent's
	// (see Owner), so it is not touched: a beat is not proof.
	ErrNotOwned = errors.New("container is not the agent's")
)

// ErrBadLabel: a recover label that is not key=value.
var ErrBadLabel = errors.New("label must be key=value")

// ParseLabel splits a recover label "key=value". The key must not be
// empty; the value may be. An error wraps ErrBadLabel.
func ParseLabel(s string) (key, value string, err error) {
	key, value, ok := strings.Cut(s, "=")
	key = strings.TrimSpace(key)
	if !ok || key == "" {
		return "", "", fmt.Errorf("%w, got %q", ErrBadLabel, s)
	}
	return key, value, nil
}

// CheckHost checks a Docker Engine address (--docker-host, DOCKER_HOST)
// without dialling it or looking any name up: unix:///path, tcp://host:port
// or npipe:////./pipe/name, as the Docker CLI writes them.
func CheckHost(host string) error {
	proto, addr, ok := strings.Cut(host, "://")
	if !ok {
		return fmt.Errorf("want unix:///path, tcp://host:port or npipe:///path, got %q", host)
	}
	switch proto {
	case "unix", "npipe":
		if strings.Trim(addr, "/") == "" {
			return fmt.Errorf("%s address without a path, got %q", proto, host)
		}
	case "tcp":
		u, err := url.Parse(host)
		if err != nil || u.Hostname() == "" {
			return fmt.Errorf("tcp address without a host, got %q", host)
		}
		if p := u.Port(); p != "" {
			if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
				return fmt.Errorf("tcp port must be 1 to 65535, got %q", host)
			}
		}
	default:
		return fmt.Errorf("scheme must be unix, tcp or npipe, got %q", host)
	}
	return nil
}

// Config tunes an Engine. The zero value works: the default recover label,
// a 30s wait for a restarting container, logs to slog.Default.
type Config struct {
	// RecoverLabel is "key=value"; only containers carrying it are acted on.
	RecoverLabel string
	// RestartingWait bounds how long Check waits for a container that the
	// engine is restarting on its own.
	RestartingWait time.Duration
	// PollInterval is how often Check looks at a restarting container.
	PollInterval time.Duration
	// Logger receives what an action leaves behind that its caller is not
	// told of (a replaced container that could not be removed); nil means
	// slog.Default().
	Logger *slog.Logger
	// Now is the clock that names a replaced container; nil means time.Now.
	Now func() time.Time
	// Namespace is the fleet's namespace (--namespace): a container whose
	// beatwatch.namespace label says another is never touched.
	Namespace string
}

// Engine is one Docker Engine as recovery sees it: it finds an agent's
// container and judges, restarts or replaces it, and touches only
// containers that carry the recover label.
type Engine struct {
	engine               api
	address              string
	namespace            string
	labelKey, labelValue string
	restartingWait       time.Duration
	poll                 time.Duration
	log                  *slog.Logger
	now                  func() time.Time
}

// Dial returns the Engine at host (a DOCKER_HOST style address such as
// unix:///var/run/docker.sock or tcp://host:2375), or, when host is empty,
// where the DOCKER_* environment variables say (the local socket by
// default). No connection is made until the first call; Ping checks that
// the engine is there. It fails on an address the client cannot use and on
// a bad RecoverLabel (ErrBadLabel).
func Dial(host string, cfg Config) (*Engine, error) {
	if _, _, err := ParseLabel(cmp.Or(cfg.RecoverLabel, DefaultRecoverLabel)); err != nil {
		return nil, err
	}
	a, err := dialAPI(host, os.Getenv)
	if err != nil {
		return nil, err
	}
	d, err := newEngine(a, cfg)
	if err != nil {
		return nil, err
	}
	d.address = a.host
	return d, nil
}

// Address is where the engine is reached, as a DOCKER_HOST value.
func (d *Engine) Address() string { return d.address }

// Identify returns the engine's own ID and its host's name. The ID tells
// engines apart: two engines on one machine report the same host name.
func (d *Engine) Identify(ctx context.Context) (id, name string, err error) {
	return d.engine.Info(ctx)
}

// AgentContainers returns the containers of this namespace that carry the
// agent label, running or not: agent id -> container id. An agent with
// several containers is left out (Find says ErrAmbiguous for it).
func (d *Engine) AgentContainers(ctx context.Context) (map[string]string, error) {
	list, err := d.engine.ListLabeled(ctx, AgentLabel)
	if err != nil {
		return nil, fmt.Errorf("list agent containers: %w", err)
	}
	out := make(map[string]string, len(list))
	twice := map[string]bool{}
	for _, c := range list {
		agent := c.Labels[AgentLabel]
		if agent == "" || !d.ours(c.Labels) {
			continue
		}
		if _, ok := out[agent]; ok {
			twice[agent] = true
		}
		out[agent] = c.ID
	}
	for a := range twice {
		delete(out, a)
	}
	return out, nil
}

// ours says whether a container with these labels belongs to this
// beatwatch's namespace.
func (d *Engine) ours(labels map[string]string) bool {
	ns, ok := labels[NamespaceLabel]
	return !ok || ns == d.namespace
}

// Ping checks that the engine answers.
func (d *Engine) Ping(ctx context.Context) error {
	if m, ok := d.engine.(*mobyAPI); ok {
		return m.Ping(ctx)
	}
	return nil
}

// Close releases the client's connections.
func (d *Engine) Close() error {
	if m, ok := d.engine.(*mobyAPI); ok {
		return m.Close()
	}
	return nil
}

// newEngine returns an Engine that acts through engine. It fails only on a
// bad RecoverLabel.
func newEngine(engine api, cfg Config) (*Engine, error) {
	if cfg.RecoverLabel == "" {
		cfg.RecoverLabel = DefaultRecoverLabel
	}
	key, value, err := ParseLabel(cfg.RecoverLabel)
	if err != nil {
		return nil, err
	}
	d := &Engine{
		engine: engine, namespace: cfg.Namespace, labelKey: key, labelValue: value,
		restartingWait: cfg.RestartingWait, poll: cfg.PollInterval,
		log: cfg.Logger, now: cfg.Now,
	}
	if d.restartingWait <= 0 {
		d.restartingWait = 30 * time.Second
	}
	if d.poll <= 0 {
		d.poll = 500 * time.Millisecond
	}
	if d.log == nil {
		d.log = slog.Default()
	}
	if d.now == nil {
		d.now = time.Now
	}
	return d, nil
}

// Container is what recovery knows about an agent's container.
type Container struct {
	ID    string
	Name  string // without the leading slash
	Image string // as the operator named it
	// Agent is the agent the container was found for.
	Agent  string
	Labels map[string]string
	// State is the engine's: created, running, paused, restarting,
	// removing, exited or dead.
	State    string
	ExitCode int
	// RestartPolicy is the engine's restart policy: no, always,
	// on-failure or unless-stopped.
	RestartPolicy string
	// Eligible is set when the container carries the recover label and
	// belongs to this namespace. A container that is not eligible gets an
	// alert and nothing else.
	Eligible bool
	// Foreign is set when its beatwatch.namespace label names another
	// fleet's namespace (Namespace).
	Foreign   bool
	Namespace string
}

// ShortID is the 12-character form of the container's id.
func (c Container) ShortID() string {
	if len(c.ID) > 12 {
		return c.ID[:12]
	}
	return c.ID
}

var containerIDPattern = regexp.MustCompile(`^[0-9a-f]{12,64}$`)

// Find locates the container of agent. A containerID from the agent's beats
// (64 hex characters, or a prefix of at least 12) is tried first, and taken
// only if the container is provably the agent's (Owner); when it is empty,
// gone or not the agent's, the container labelled beatwatch.agent=<agent>
// is. It returns ErrNotFound when there is none, ErrNotOwned (saying why)
// when the only candidate is the beats' container and that is not the
// agent's, and ErrAmbiguous when more than one carries the label. A
// container found without the recover label is returned with Eligible
// false.
func (d *Engine) Find(ctx context.Context, agent, containerID string) (Container, error) {
	var refused error // the beats' container, when it is not the agent's
	if containerID != "" {
		if !containerIDPattern.MatchString(containerID) {
			return Container{}, fmt.Errorf("container id %q is not 12 to 64 hex characters", containerID)
		}
		info, err := d.engine.Inspect(ctx, containerID)
		switch {
		case err == nil:
			if why, ok := Owner(agent, info.Config); !ok {
				// Anyone who can send a beat can name any container; only
				// the container itself can say whose it is.
				refused = fmt.Errorf("container %s: %w: %s", short(info.ID), ErrNotOwned, why)
				break
			}
			return d.container(agent, info), nil
		case !errors.Is(err, ErrNotFound):
			return Container{}, fmt.Errorf("inspect container %s: %w", containerID, err)
		}
		// The container of the beats is gone, or is not the agent's; one that
		// carries the agent's label (created in its place by us, or by
		// compose) is.
	}
	all, err := d.engine.List(ctx, AgentLabel, agent)
	if err != nil {
		return Container{}, fmt.Errorf("list containers of agent %s: %w", agent, err)
	}
	// Another fleet's agent of the same name is not this one.
	var list []container.Summary
	for _, c := range all {
		if d.ours(c.Labels) {
			list = append(list, c)
		}
	}
	switch len(list) {
	case 0:
		if refused != nil {
			return Container{}, refused
		}
		return Container{}, fmt.Errorf("container of agent %s: %w", agent, ErrNotFound)
	case 1:
	default:
		return Container{}, fmt.Errorf("agent %s: %d containers: %w", agent, len(list), ErrAmbiguous)
	}
	info, err := d.engine.Inspect(ctx, list[0].ID)
	if err != nil {
		return Container{}, fmt.Errorf("inspect container %s: %w", list[0].ID, err)
	}
	return d.container(agent, info), nil
}

// Owner says whether a container's own configuration names agent, and how
// (or, when it does not, why not). A container is the agent's when its
// beatwatch.agent label is the id; one without that label is the agent's
// when its command runs beatwrap with --id <agent> (or --id=<agent>) or its
// environment sets BEATWRAP_ID=<agent>. A label that names another agent
// wins over everything else. The beats never count: whoever can send a beat
// can name any container.
func Owner(agent string, cfg *container.Config) (why string, ok bool) {
	if cfg == nil {
		return "the engine said nothing of its configuration", false
	}
	if v, has := cfg.Labels[AgentLabel]; has {
		if v == agent {
			return "label " + AgentLabel + "=" + agent, true
		}
		return fmt.Sprintf("its label %s=%q names another agent than %q", AgentLabel, v, agent), false
	}
	for _, e := range cfg.Env {
		if e == "BEATWRAP_ID="+agent {
			return "environment BEATWRAP_ID=" + agent, true
		}
	}
	args := append(append([]string{}, cfg.Entrypoint...), cfg.Cmd...)
	for i, a := range args {
		if a == "--" {
			break // the agent's own command line from here on
		}
		if a == "--id="+agent || a == "--id" && i+1 < len(args) && args[i+1] == agent {
			return "command line --id " + agent, true
		}
	}
	return fmt.Sprintf("neither a label %s=%s, nor --id %s in its command, nor BEATWRAP_ID=%s in its environment", AgentLabel, agent, agent, agent), false
}

// container turns an inspection into a Container.
func (d *Engine) container(agent string, info container.InspectResponse) Container {
	c := Container{ID: info.ID, Name: strings.TrimPrefix(info.Name, "/"), Agent: agent}
	if info.Config != nil {
		c.Image = info.Config.Image
		c.Labels = info.Config.Labels
	}
	if info.State != nil {
		c.State = string(info.State.Status)
		c.ExitCode = info.State.ExitCode
	}
	if info.HostConfig != nil {
		c.RestartPolicy = string(info.HostConfig.RestartPolicy.Name)
	}
	v, ok := c.Labels[d.labelKey]
	c.Namespace = c.Labels[NamespaceLabel]
	c.Foreign = !d.ours(c.Labels)
	c.Eligible = ok && v == d.labelValue && !c.Foreign
	return c
}

// Verdict is what Check concludes about a container.
type Verdict string

// The verdicts of Check. Only Running and Crashed call for a restart.
const (
	// VerdictRunning: the container runs but its agent has failed or
	// stalled: restart it.
	VerdictRunning Verdict = "running"
	// VerdictCrashed: the container exited or died on its own: restart it.
	VerdictCrashed Verdict = "crashed"
	// VerdictOperatorStopped: someone stopped it on purpose; leave it.
	VerdictOperatorStopped Verdict = "operator-stopped"
	// VerdictPaused: someone paused it; leave it.
	VerdictPaused Verdict = "paused"
	// VerdictRemoved: the container is gone (or being removed).
	VerdictRemoved Verdict = "removed"
	// VerdictRestarting: the engine's restart policy is still restarting it
	// after Check waited; leave it to the engine.
	VerdictRestarting Verdict = "restarting"
	// VerdictRestartedByEngine: the engine's restart policy brought it back
	// while Check waited; give the agent time to beat.
	VerdictRestartedByEngine Verdict = "restarted-by-engine"
	// VerdictNotEligible: the container lacks the recover label.
	VerdictNotEligible Verdict = "not-eligible"
)

// Actionable reports whether the verdict calls for Restart (and, failing
// that, Replace).
func (v Verdict) Actionable() bool { return v == VerdictRunning || v == VerdictCrashed }

// Check inspects c afresh and judges whether recovery should act on it.
// finalStopped says the agent's last beat was a final "stopped": together
// with a stopped container, that is an operator's stop. A container that the
// engine is restarting is waited for, up to Config.RestartingWait. It returns
// the fresh Container and the verdict, or an error when the engine could not
// be asked.
func (d *Engine) Check(ctx context.Context, c Container, finalStopped bool) (Container, Verdict, error) {
	info, err := d.engine.Inspect(ctx, c.ID)
	if errors.Is(err, ErrNotFound) {
		return c, VerdictRemoved, nil
	}
	if err != nil {
		return c, "", fmt.Errorf("inspect container %s: %w", c.ShortID(), err)
	}
	fresh := d.container(c.Agent, info)
	if !fresh.Eligible {
		return fresh, VerdictNotEligible, nil
	}
	if fresh.State == string(container.StateRestarting) {
		fresh, err = d.waitRestarting(ctx, fresh)
		if errors.Is(err, ErrNotFound) {
			return c, VerdictRemoved, nil
		}
		if err != nil {
			return fresh, "", err
		}
		if fresh.State == string(container.StateRunning) {
			return fresh, VerdictRestartedByEngine, nil
		}
	}
	return fresh, judge(fresh, finalStopped), nil
}

// judge decides on a container that is not being restarted by Check's wait.
func judge(c Container, finalStopped bool) Verdict {
	switch container.ContainerState(c.State) {
	case container.StateRunning:
		return VerdictRunning
	case container.StatePaused:
		return VerdictPaused
	case container.StateRestarting:
		return VerdictRestarting
	case container.StateRemoving:
		return VerdictRemoved
	case container.StateExited, container.StateCreated:
		if finalStopped {
			return VerdictOperatorStopped
		}
		// Under "always" or "unless-stopped" the engine restarts whatever
		// exits, unless someone ran docker stop: an exited container with
		// such a policy was stopped on purpose.
		if c.State == string(container.StateExited) &&
			(c.RestartPolicy == string(container.RestartPolicyAlways) || c.RestartPolicy == string(container.RestartPolicyUnlessStopped)) {
			return VerdictOperatorStopped
		}
		return VerdictCrashed
	}
	// dead, or a state this engine version made up: the process is gone.
	return VerdictCrashed
}

// waitRestarting polls a container the engine is restarting until it is
// not, or RestartingWait has passed.
func (d *Engine) waitRestarting(ctx context.Context, c Container) (Container, error) {
	deadline := time.NewTimer(d.restartingWait)
	defer deadline.Stop()
	tick := time.NewTicker(d.poll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return c, ctx.Err()
		case <-deadline.C:
			return c, nil
		case <-tick.C:
		}
		info, err := d.engine.Inspect(ctx, c.ID)
		if err != nil {
			return c, fmt.Errorf("inspect container %s: %w", c.ShortID(), err)
		}
		c = d.container(c.Agent, info)
		if c.State != string(container.StateRestarting) {
			return c, nil
		}
	}
}

// Restart restarts c through the engine, giving its process grace to stop
// before it is killed (the agent's --grace; 0 means the container's own stop
// timeout). It refuses, with ErrNotEligible, a container that does not carry
// the recover label when looked at now. The container must be running after
// the restart for Restart to succeed.
func (d *Engine) Restart(ctx context.Context, c Container, grace time.Duration) error {
	return d.restart(ctx, c, grace)
}

func (d *Engine) restart(ctx context.Context, c Container, grace time.Duration) error {
	info, err := d.eligible(ctx, c)
	if err != nil {
		return err
	}
	if err := d.engine.Restart(ctx, info.ID, d.stopTimeout(ctx, info, grace)); err != nil {
		return fmt.Errorf("restart container %s: %w", c.ShortID(), err)
	}
	return d.running(ctx, info.ID)
}

// eligible inspects c and returns it only if it carries the recover label:
// the label is checked on every action, not trusted from an earlier look.
func (d *Engine) eligible(ctx context.Context, c Container) (container.InspectResponse, error) {
	info, err := d.engine.Inspect(ctx, c.ID)
	if err != nil {
		return info, fmt.Errorf("inspect container %s: %w", c.ShortID(), err)
	}
	if fresh := d.container(c.Agent, info); fresh.Foreign {
		return info, fmt.Errorf("container %s: %w: it belongs to namespace %q", c.ShortID(), ErrNotEligible, fresh.Namespace)
	} else if !fresh.Eligible {
		return info, fmt.Errorf("container %s: %w: it lacks the label %s=%s", c.ShortID(), ErrNotEligible, d.labelKey, d.labelValue)
	}
	if why, ok := Owner(c.Agent, info.Config); c.Agent != "" && !ok {
		return info, fmt.Errorf("container %s: %w: %s", c.ShortID(), ErrNotOwned, why)
	}
	if info.Config == nil || info.HostConfig == nil || info.State == nil {
		return info, fmt.Errorf("inspect container %s: incomplete answer from the engine", c.ShortID())
	}
	return info, nil
}

// running checks that a container that was just started still runs.
func (d *Engine) running(ctx context.Context, id string) error {
	info, err := d.engine.Inspect(ctx, id)
	if err != nil {
		return fmt.Errorf("inspect container %s: %w", short(id), err)
	}
	if info.State == nil || !info.State.Running {
		st := container.State{}
		if info.State != nil {
			st = *info.State
		}
		return fmt.Errorf("container %s is %s after start (exit code %d%s)", short(id), st.Status, st.ExitCode, errSuffix(st.Error))
	}
	return nil
}

func errSuffix(s string) string {
	if s == "" {
		return ""
	}
	return ": " + s
}

// stopTimeout turns a grace period into the engine's whole seconds, rounded
// up so that an agent never gets less than its grace.
func stopTimeout(grace time.Duration) *int {
	if grace <= 0 {
		return nil
	}
	s := int(math.Ceil(grace.Seconds()))
	return &s
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
