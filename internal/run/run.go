// Package run runs the parts of a process as a group of actors: each has an
// execute function that blocks and an interrupt function that makes it return.
// The first actor to return stops the rest, and Run waits for all of them. It
// is the shape of oklog/run's Group, written small.
package run

// Group is a set of actors that live and die together. The zero value is
// ready to use.
type Group struct {
	actors []actor
}

type actor struct {
	execute   func() error
	interrupt func(error)
}

// Add puts an actor in the group. interrupt must make execute return soon,
// and may be called after execute has returned.
func (g *Group) Add(execute func() error, interrupt func(error)) {
	g.actors = append(g.actors, actor{execute, interrupt})
}

// Run starts every actor, waits for the first to return, interrupts all of
// them with its error, waits for the rest, and returns the first error (which
// may be nil).
func (g *Group) Run() error {
	if len(g.actors) == 0 {
		return nil
	}
	errs := make(chan error, len(g.actors))
	for _, a := range g.actors {
		go func(a actor) { errs <- a.execute() }(a)
	}
	err := <-errs
	for _, a := range g.actors {
		a.interrupt(err)
	}
	for i := 1; i < len(g.actors); i++ {
		<-errs
	}
	return err
}
