package cmdutil

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestConnection(t *testing.T) {
	t.Parallel()
	dataDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dataDir, "initial_admin_token"), []byte("dpxp_initial\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		flags      Flags
		env        map[string]string
		profile    *Profile
		wantServer string
		wantToken  string
	}{
		{"defaults use the initial token", Flags{DataDir: dataDir}, nil, nil, DefaultServer, "dpxp_initial"},
		{"data dir from the environment", Flags{}, map[string]string{"DPROXY_DATA_DIR": dataDir}, nil, DefaultServer, "dpxp_initial"},
		{"flag beats env", Flags{Server: "http://a:1", Token: "t-flag"}, map[string]string{"DPROXY_SERVER": "http://b:2", "DPROXY_TOKEN": "t-env"}, nil, "http://a:1", "t-flag"},
		{"env beats profile", Flags{}, map[string]string{"DPROXY_SERVER": "http://b:2", "DPROXY_TOKEN": "t-env"}, &Profile{Server: "http://b:2", Token: "t-prof"}, "http://b:2", "t-env"},
		{"profile", Flags{DataDir: dataDir}, nil, &Profile{Server: "http://127.0.0.1:5000/", Token: "t-prof"}, DefaultServer, "t-prof"},
		{"profile of another server is not sent", Flags{Server: "http://other:5000", DataDir: dataDir}, nil, &Profile{Server: "http://p:1", Token: "t-prof"}, "http://other:5000", ""},
		{"initial token never leaves the machine", Flags{Server: "https://dproxy.example.com", DataDir: dataDir}, nil, nil, "https://dproxy.example.com", ""},
		{"localhost is local", Flags{Server: "http://localhost:5000", DataDir: dataDir}, nil, nil, "http://localhost:5000", "dpxp_initial"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := t.TempDir()
			env := map[string]string{"XDG_CONFIG_HOME": cfg, "DPROXY_DATA_DIR": filepath.Join(cfg, "none")}
			for k, v := range tt.env {
				env[k] = v
			}
			getenv := func(k string) string { return env[k] }
			if tt.profile != nil {
				if _, err := SaveProfile(getenv, *tt.profile); err != nil {
					t.Fatal(err)
				}
			}
			ios, _, _ := Test("")
			f := NewFactory(ios)
			f.Getenv, f.Flags = getenv, tt.flags
			c, err := f.Connection()
			if err != nil {
				t.Fatal(err)
			}
			if c.Server != tt.wantServer || c.Token != tt.wantToken {
				t.Fatalf("connection = %s %q, want %s %q", c.Server, c.Token, tt.wantServer, tt.wantToken)
			}
		})
	}
}

func TestSaveProfile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	getenv := func(k string) string { return map[string]string{"XDG_CONFIG_HOME": dir}[k] }
	path, err := SaveProfile(getenv, Profile{Server: "http://x:1", Token: "secret"})
	if err != nil {
		t.Fatal(err)
	}
	if path != filepath.Join(dir, "dproxy", "config.yaml") {
		t.Fatalf("path = %s", path)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("mode = %v, %v; want 0600", st.Mode(), err)
	}
	p, err := LoadProfile(getenv)
	if err != nil || p.Token != "secret" || p.Server != "http://x:1" {
		t.Fatalf("LoadProfile = %+v, %v", p, err)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Fatalf("leftover files: %v", entries)
	}
}

// Two secrets piped on one stdin are read one line each.
func TestReadSecretsOneLineEach(t *testing.T) {
	t.Parallel()
	ios, _, _ := Test("current\nnew one\r\n")
	first, err := ios.ReadSecret("current password")
	if err != nil {
		t.Fatal(err)
	}
	second, err := ios.ReadSecret("new password")
	if err != nil || first != "current" || second != "new one" {
		t.Errorf("read %q then %q, %v; want current, new one", first, second, err)
	}
	if _, err := ios.ReadSecret("a third"); err == nil || !strings.Contains(err.Error(), "a third is empty") {
		t.Errorf("a third secret from an exhausted stdin: %v", err)
	}
}

func TestReadSecret(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want, wantErr string }{
		{"s3cret\n", "s3cret", ""},
		{"s3cret", "s3cret", ""},
		{"s3cret\r\nmore", "s3cret", ""},
		{"", "", "is empty"},
		{"\n", "", "is empty"},
	}
	for _, tt := range tests {
		ios, _, _ := Test(tt.in)
		got, err := ios.ReadSecret("secret")
		if got != tt.want || (err == nil) != (tt.wantErr == "") {
			t.Errorf("ReadSecret(%q) = %q, %v", tt.in, got, err)
		}
		if err != nil && ExitCode(err) != ExitUsage {
			t.Errorf("ReadSecret(%q) error exit code = %d, want %d", tt.in, ExitCode(err), ExitUsage)
		}
	}
}

// TestNoToken checks that without any token nothing is sent and the error
// says how to get one: login, DPROXY_TOKEN and, for a server on this
// machine, the data dir holding its initial admin token.
func TestNoToken(t *testing.T) {
	t.Parallel()
	tests := []struct {
		server   string
		want     []string
		dataHint bool
	}{
		{"http://127.0.0.1:5000", []string{"no API token for http://127.0.0.1:5000", "dproxy login --server http://127.0.0.1:5000", "DPROXY_TOKEN", "--data-dir (or DPROXY_DATA_DIR)", "initial_admin_token"}, true},
		{"https://dproxy.example.com", []string{"no API token for https://dproxy.example.com", "dproxy login --server https://dproxy.example.com", "DPROXY_TOKEN"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.server, func(t *testing.T) {
			t.Parallel()
			empty := t.TempDir()
			env := map[string]string{"XDG_CONFIG_HOME": t.TempDir(), "DPROXY_DATA_DIR": empty}
			ios, _, _ := Test("")
			f := NewFactory(ios)
			f.Getenv = func(k string) string { return env[k] }
			f.Flags.Server = tt.server
			_, err := f.AdminClient()
			var nt *NoTokenError
			if !errors.As(err, &nt) {
				t.Fatalf("AdminClient() error = %v, want a NoTokenError", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%q does not say %q", err, w)
				}
			}
			if got := strings.Contains(err.Error(), filepath.Join(empty, "initial_admin_token")); got != tt.dataHint {
				t.Errorf("names the data dir looked in: %v, want %v: %q", got, tt.dataHint, err)
			}
			if ExitCode(err) != ExitAuth {
				t.Errorf("exit code %d, want %d", ExitCode(err), ExitAuth)
			}
		})
	}
}
