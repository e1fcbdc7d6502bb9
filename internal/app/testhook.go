package app

import (
	"context"
	"io"
	"log/slog"
	"os"
	"sync"

	"github.com/dproxy/dproxy/internal/keyfile"
	"github.com/dproxy/dproxy/internal/oci"
)

// GCPauseEnv names an environment variable for crash tests only. When it
// holds a file path, the first garbage collection that deletes a blob file
// then writes that digest to the file and waits until the server stops,
// so that a test can kill the process in the middle of a collection
// without guessing when. Never set it on a real server.
const GCPauseEnv = "DPROXY_TEST_GC_PAUSE_FILE"

// gcPauseHook returns the lifecycle.Options.AfterDelete that GCPauseEnv
// asks for, or nil.
func gcPauseHook(log *slog.Logger) func(context.Context, oci.Digest) {
	path := os.Getenv(GCPauseEnv)
	if path == "" {
		return nil
	}
	log.Warn("garbage collection will stop after its first delete: "+GCPauseEnv+" is set, for crash tests only", "file", path)
	var once sync.Once
	return func(ctx context.Context, d oci.Digest) {
		once.Do(func() {
			if err := keyfile.WriteAtomic(path, 0o600, func(w io.Writer) error {
				_, err := io.WriteString(w, string(d))
				return err
			}); err != nil {
				log.Error("write the gc pause file", "file", path, "err", err)
				return
			}
			<-ctx.Done()
		})
	}
}
