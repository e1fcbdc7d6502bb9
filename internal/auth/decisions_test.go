package auth

import (
	"testing"
	"time"
)

func TestDecisionsHoldOnlyUnderTheirGeneration(t *testing.T) {
	var d decisions
	now := time.Now()
	p := Principal{Anonymous: true}
	d.rememberPrincipal(5, "k", p, now.Add(time.Minute))
	d.rememberTarget(5, "k", "acme", Target{GroupID: 7})

	if _, ok := d.principal(5, "k", now); !ok {
		t.Error("principal not remembered under its generation")
	}
	if got, ok := d.target(5, "k", "acme"); !ok || got.GroupID != 7 {
		t.Errorf("target = %+v, %v", got, ok)
	}
	if _, ok := d.principal(5, "k", now.Add(time.Minute)); ok {
		t.Error("principal reused at its expiry")
	}

	// A request that read generation 4 before the change to 5 was seen
	// neither reuses nor remembers, nor evicts what 5 holds.
	d.rememberPrincipal(4, "old", p, now.Add(time.Minute))
	if _, ok := d.principal(4, "k", now); ok {
		t.Error("an older generation reused a decision")
	}
	if _, ok := d.principal(5, "old", now); ok {
		t.Error("a decision made under an older generation was remembered")
	}
	if _, ok := d.target(5, "k", "acme"); !ok {
		t.Error("an older generation evicted the current decisions")
	}

	// The next generation drops everything.
	if _, ok := d.target(6, "k", "acme"); ok {
		t.Error("target reused after the generation moved")
	}
	if _, ok := d.principal(5, "k", now); ok {
		t.Error("principal reused under a generation that has passed")
	}
}
