package commands

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/dproxy/dproxy/internal/commands/cmdutil"
	"github.com/dproxy/dproxy/internal/config"
)

// TestServeFlagsMatchConfigurationDocs keeps docs/configuration.md and
// serve's flags in step: every flag the page names exists, every flag serve
// has is on the page, and the options table's flag column says, for each
// key, either its flag or that it has none.
func TestServeFlagsMatchConfigurationDocs(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "configuration.md"))
	if err != nil {
		t.Fatalf("read docs: %v", err)
	}
	doc := string(b)
	ios, _, _ := cmdutil.Test("")
	flags := newCmdServe(ios, nil).Flags()

	// Every `--name` on the page is a flag of serve.
	documented := make(map[string]bool)
	for _, m := range regexp.MustCompile("`--([a-z0-9][a-z0-9-]*)").FindAllStringSubmatch(doc, -1) {
		documented[m[1]] = true
		if flags.Lookup(m[1]) == nil {
			t.Errorf("docs/configuration.md documents --%s, but dproxy serve has no such flag", m[1])
		}
	}
	// Every flag of serve is on the page.
	flags.VisitAll(func(f *pflag.Flag) {
		if !documented[f.Name] {
			t.Errorf("dproxy serve has --%s, but docs/configuration.md does not document it", f.Name)
		}
	})

	// Each key's row names its flag, or says it has none.
	flagCell := make(map[string]string)
	for line := range strings.Lines(doc) {
		if cells := strings.Split(strings.Trim(strings.TrimSpace(line), "|"), " | "); strings.HasPrefix(line, "| `") && len(cells) >= 2 {
			flagCell[strings.Trim(strings.TrimSpace(cells[0]), "`")] = strings.TrimSpace(cells[1])
		}
	}
	for _, key := range config.Keys() {
		cell, ok := flagCell[key]
		switch {
		case !ok:
			t.Errorf("docs/configuration.md has no table row for %q", key)
		case flags.Lookup(key) != nil && cell != "`--"+key+"`":
			t.Errorf("docs/configuration.md: the flag of %q is %s, want `--%s`", key, cell, key)
		case flags.Lookup(key) == nil && cell != "none: env or file only":
			t.Errorf("docs/configuration.md: %q has no flag in dproxy serve, but its flag column says %s, want \"none: env or file only\"", key, cell)
		}
	}
	// Every flag but --config sets the key of its name.
	flags.VisitAll(func(f *pflag.Flag) {
		if f.Name != "config" && !slices.Contains(config.Keys(), f.Name) {
			t.Errorf("dproxy serve has --%s, which is no configuration key", f.Name)
		}
	})
}

// TestServeFlags checks what serve makes of its size flags: values with
// units, defaults that are the configuration's, and a clear error for a
// bad value.
func TestServeFlags(t *testing.T) {
	t.Parallel()
	def := config.Default()
	for _, tc := range []struct {
		line           string
		manifest, blob int64
		wantErr        string
	}{
		{line: "", manifest: def.MaxManifestSize, blob: def.MaxBlobSize},
		{line: "--max-manifest-size 4MiB --max-blob-size 2GB", manifest: 4 << 20, blob: 2e9},
		{line: "--max-blob-size 1048576", manifest: def.MaxManifestSize, blob: 1 << 20},
		{line: "--max-blob-size 10XB", wantErr: `flag --max-blob-size: invalid size "10XB": unknown unit "XB"`},
		{line: "--max-manifest-size 0", wantErr: "max-manifest-size must be positive, got 0"},
		{line: "--max-manifest-size=-1KiB", wantErr: `flag --max-manifest-size: invalid size "-1KiB"`},
	} {
		t.Run(tc.line, func(t *testing.T) {
			t.Parallel()
			ios, _, _ := cmdutil.Test("")
			var got *serveOptions
			cmd := newCmdServe(ios, func(_ context.Context, o *serveOptions) error { got = o; return nil })
			err := execute(cmd, "--data-dir "+t.TempDir()+" "+tc.line)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("serve %s: error %v, want one containing %q", tc.line, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("serve %s: %v", tc.line, err)
			}
			if got.Config.MaxManifestSize != tc.manifest || got.Config.MaxBlobSize != tc.blob {
				t.Errorf("serve %s: max-manifest-size %d, max-blob-size %d; want %d, %d",
					tc.line, got.Config.MaxManifestSize, got.Config.MaxBlobSize, tc.manifest, tc.blob)
			}
		})
	}

	// --help shows the configuration's defaults.
	ios, _, _ := cmdutil.Test("")
	flags := newCmdServe(ios, nil).Flags()
	for key, want := range map[string]int64{"max-manifest-size": def.MaxManifestSize, "max-blob-size": def.MaxBlobSize, "cache-max-size": def.CacheMaxSize} {
		f := flags.Lookup(key)
		if f == nil {
			t.Errorf("dproxy serve has no --%s", key)
			continue
		}
		if n, err := config.ParseSize(f.DefValue); err != nil || n != want {
			t.Errorf("--%s shows the default %q (%d, %v), want %d", key, f.DefValue, n, err, want)
		}
	}
}
