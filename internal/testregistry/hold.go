package testregistry

import (
	"io"
	"net/http"
	"sync"
)

// Hold stops the body of a blob GET after a number of bytes until it is
// released, so a test can observe what happens while a download is in
// progress without depending on how fast the machine is.
type Hold struct {
	after    int64
	reached  chan struct{}
	released chan struct{}
	once     sync.Once
	reach    sync.Once
}

// HoldBlob makes the next GETs of blob d send their first after bytes (and
// flush them) and then wait until the returned Hold is released, the client
// goes away or the upstream closes.
func (u *Upstream) HoldBlob(d string, after int64) *Hold {
	h := &Hold{after: after, reached: make(chan struct{}), released: make(chan struct{})}
	u.set(func() { u.holds[d] = h })
	return h
}

// Reached is closed once a GET has sent its first after bytes and waits.
func (h *Hold) Reached() <-chan struct{} { return h.reached }

// Release lets held GETs send the rest of their bodies. It may be called
// more than once.
func (h *Hold) Release() { h.once.Do(func() { close(h.released) }) }

// holdWriter passes bytes through until the hold's mark, then flushes and
// waits for the release.
type holdWriter struct {
	w    io.Writer
	rw   http.ResponseWriter // flushed before waiting
	h    *Hold
	sent int64
	stop <-chan struct{} // the request's or the upstream's end
	done <-chan struct{}
}

func (hw *holdWriter) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		if hw.sent >= hw.h.after {
			if err := hw.wait(); err != nil {
				return written, err
			}
			n, err := hw.w.Write(p)
			hw.sent += int64(n)
			return written + n, err
		}
		chunk := min(int64(len(p)), hw.h.after-hw.sent)
		n, err := hw.w.Write(p[:chunk])
		written += n
		hw.sent += int64(n)
		if err != nil {
			return written, err
		}
		p = p[chunk:]
	}
	return written, nil
}

func (hw *holdWriter) wait() error {
	select {
	case <-hw.h.released:
		return nil
	default:
	}
	if f, ok := hw.rw.(http.Flusher); ok {
		f.Flush()
	}
	hw.h.reach.Do(func() { close(hw.h.reached) })
	select {
	case <-hw.h.released:
		return nil
	case <-hw.stop:
		return http.ErrAbortHandler
	case <-hw.done:
		return http.ErrAbortHandler
	}
}
