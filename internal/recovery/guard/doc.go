// Package guard holds beatwatch's recovery policy: whether a recovery may
// start now. It spaces out one agent's attempts (backoff with jitter), caps
// them per hour (a budget per agent, and one per container whatever ids
// name it), lets one recovery at a time act on a container, bounds how many
// run at once, and brakes when much of the fleet, or of one host, fails at
// once (the cause is then shared, and restarting everything only adds
// load).
//
// A Guard decides; it acts on nothing and keeps no clock: the caller passes
// its own clock's time to every call, so the policy is tested without
// sleeping.
package guard
