package bench

import (
	"crypto/sha256"
	"testing"
	"time"
)

func TestCPUTimes(t *testing.T) {
	p, err := startProcess("busy", t.TempDir(), nil, "sh", "-c", "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done; sleep 60")
	if err != nil {
		t.Fatal(err)
	}
	defer p.stop()
	deadline := time.Now().Add(time.Minute)
	for processCPU(p) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the busy child's CPU time stayed 0")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if processCPU(nil) != 0 {
		t.Error("processCPU(nil) != 0")
	}

	before := selfCPU()
	buf := make([]byte, 1<<20)
	for range 200 {
		sha256.Sum256(buf)
	}
	if selfCPU() <= before {
		t.Errorf("selfCPU did not grow while hashing 200 MiB: %v then %v", before, selfCPU())
	}
}
