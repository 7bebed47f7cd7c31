package redisfleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// What replicas that reach several Docker Engines share (see
// store.Keys.EngineLease): a lease per engine, where each agent's container
// was last seen, and once-only marks for incidents.

// LeaseEngine takes or keeps the lease of one engine for holder, like
// Lease does for the fleet.
func (w *Watcher) LeaseEngine(ctx context.Context, engine, holder string, ttl time.Duration) (bool, error) {
	key := w.keys.EngineLease(engine)
	ok, err := renewScript.Run(ctx, w.client, []string{key}, holder, ttl.Milliseconds()).Int()
	if err != nil {
		w.failed()
		return false, fmt.Errorf("renew lease of engine %s in %s: %w", engine, w.addr, err)
	}
	if ok == 1 {
		return true, nil
	}
	got, err := w.client.SetNX(ctx, key, holder, ttl).Result()
	if err != nil {
		w.failed()
		return false, fmt.Errorf("take lease of engine %s in %s: %w", engine, w.addr, err)
	}
	return got, nil
}

// EngineLeaseHolder returns who holds the lease of engine, or "" when no
// live replica does.
func (w *Watcher) EngineLeaseHolder(ctx context.Context, engine string) (string, error) {
	v, err := w.client.Get(ctx, w.keys.EngineLease(engine)).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	if err != nil {
		w.failed()
		return "", fmt.Errorf("read lease of engine %s in %s: %w", engine, w.addr, err)
	}
	return v, nil
}

// ReleaseEngineLease gives the lease of engine up if holder has it.
func (w *Watcher) ReleaseEngineLease(ctx context.Context, engine, holder string) error {
	if err := releaseScript.Run(ctx, w.client, []string{w.keys.EngineLease(engine)}, holder).Err(); err != nil {
		w.failed()
		return fmt.Errorf("release lease of engine %s in %s: %w", engine, w.addr, err)
	}
	return nil
}

// Location is where an agent's container was last seen.
type Location struct {
	// Engine is the Docker Engine's own ID.
	Engine string `json:"engine"`
	// Host is the engine's host name, for humans.
	Host string `json:"host"`
	// DockerHost is the address the engine was reached at.
	DockerHost string `json:"dockerHost,omitempty"`
	// Container is the container's ID.
	Container string `json:"container"`
}

// SetLocation records where agent's container is, for ttl.
func (w *Watcher) SetLocation(ctx context.Context, agent string, loc Location, ttl time.Duration) error {
	data, err := json.Marshal(loc)
	if err != nil {
		return err
	}
	if err := w.client.Set(ctx, w.keys.Location(agent), data, ttl).Err(); err != nil {
		w.failed()
		return fmt.Errorf("record location of %s in %s: %w", agent, w.addr, err)
	}
	return nil
}

// AgentLocation returns where agent's container was last seen, and false
// when no replica has recorded it.
func (w *Watcher) AgentLocation(ctx context.Context, agent string) (Location, bool, error) {
	data, err := w.client.Get(ctx, w.keys.Location(agent)).Bytes()
	if errors.Is(err, redis.Nil) {
		return Location{}, false, nil
	}
	if err != nil {
		w.failed()
		return Location{}, false, fmt.Errorf("read location of %s in %s: %w", agent, w.addr, err)
	}
	var loc Location
	if err := json.Unmarshal(data, &loc); err != nil {
		return Location{}, false, fmt.Errorf("location of %s in %s: %w", agent, w.addr, err)
	}
	return loc, true, nil
}

// OpenIncident marks the incident name open, for ttl at most, and reports
// whether this call opened it: only that caller alerts.
func (w *Watcher) OpenIncident(ctx context.Context, name, holder string, ttl time.Duration) (bool, error) {
	ok, err := w.client.SetNX(ctx, w.keys.Incident(name), holder, ttl).Result()
	if err != nil {
		w.failed()
		return false, fmt.Errorf("open incident %s in %s: %w", name, w.addr, err)
	}
	return ok, nil
}

// CloseIncident closes the incident name and reports whether it was open:
// only the caller that closed it sends the resolve.
func (w *Watcher) CloseIncident(ctx context.Context, name string) (bool, error) {
	n, err := w.client.Del(ctx, w.keys.Incident(name)).Result()
	if err != nil {
		w.failed()
		return false, fmt.Errorf("close incident %s in %s: %w", name, w.addr, err)
	}
	return n == 1, nil
}

// IncidentOpen reports whether the incident name is open.
func (w *Watcher) IncidentOpen(ctx context.Context, name string) (bool, error) {
	n, err := w.client.Exists(ctx, w.keys.Incident(name)).Result()
	if err != nil {
		w.failed()
		return false, fmt.Errorf("read incident %s in %s: %w", name, w.addr, err)
	}
	return n == 1, nil
}
