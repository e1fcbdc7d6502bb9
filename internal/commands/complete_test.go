package commands

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/dproxy/dproxy/internal/commands/cmdutil"
)

// A server that does not answer gives no completions once the completion's
// time is up, and no error: the shell must not hang or print one.
func TestCompletionGivesUpOnASilentServer(t *testing.T) {
	t.Parallel()
	hang := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-hang }))
	t.Cleanup(func() { close(hang); srv.Close() })
	ios, _, errOut := cmdutil.Test("")
	f := cmdutil.NewFactory(ios)
	f.Flags.Server, f.Flags.Token = srv.URL, "dpxp_any"
	k := completer{f: f, timeout: 50 * time.Millisecond}
	cmd := &cobra.Command{}
	cmd.SetContext(context.Background())

	type result struct {
		vals []string
		dir  cobra.ShellCompDirective
	}
	done := make(chan result, 1)
	go func() {
		vals, dir := k.groups()(cmd, nil, "")
		done <- result{vals, dir}
	}()
	select {
	case r := <-done:
		if len(r.vals) != 0 || r.dir != cobra.ShellCompDirectiveNoFileComp {
			t.Errorf("completion from a silent server = %q, %v; want none, without files", r.vals, r.dir)
		}
	case <-time.After(time.Minute): // only ends a failing run
		t.Fatal("the completion did not give up on a server that does not answer")
	}
	if errOut.Len() != 0 {
		t.Errorf("the completion printed %q", errOut)
	}
}

func TestCommaList(t *testing.T) {
	t.Parallel()
	fn := commaList("api", "read_registry", "write_registry")
	for _, tt := range []struct {
		typed string
		want  []string
	}{
		{"", []string{"api", "read_registry", "write_registry"}},
		{"re", []string{"read_registry"}},
		{"api,", []string{"api,read_registry", "api,write_registry"}},
		{"api,read_registry,w", []string{"api,read_registry,write_registry"}},
	} {
		got, _ := fn(nil, nil, tt.typed)
		if len(got) != len(tt.want) {
			t.Errorf("commaList(%q) = %q, want %q", tt.typed, got, tt.want)
			continue
		}
		for i := range got {
			if got[i] != tt.want[i] {
				t.Errorf("commaList(%q) = %q, want %q", tt.typed, got, tt.want)
			}
		}
	}
}
