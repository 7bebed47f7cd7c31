package run

import (
	"errors"
	"testing"
	"time"
)

func TestFirstReturnStopsAll(t *testing.T) {
	var g Group
	stop := make(chan struct{})
	interrupted := make(chan error, 1)
	g.Add(func() error { <-stop; return nil }, func(err error) { interrupted <- err; close(stop) })
	want := errors.New("boom")
	g.Add(func() error { return want }, func(error) {})

	done := make(chan error, 1)
	go func() { done <- g.Run() }()
	select {
	case got := <-done:
		if !errors.Is(got, want) {
			t.Fatalf("Run() = %v, want %v", got, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after the first actor ended")
	}
	if got := <-interrupted; !errors.Is(got, want) {
		t.Fatalf("interrupt got %v, want %v", got, want)
	}
}

func TestEmptyGroup(t *testing.T) {
	var g Group
	if err := g.Run(); err != nil {
		t.Fatalf("Run() on an empty group = %v, want nil", err)
	}
}
