package cmdutil

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/dproxy/dproxy/internal/adminclient"
	"github.com/dproxy/dproxy/internal/commands/output"
)

// DefaultServer is where the CLI looks for dproxy when nothing else is
// configured: the address `dproxy serve` listens on by default.
const DefaultServer = "http://127.0.0.1:5000"

// DefaultDataDir is `dproxy serve`'s default data dir, where the initial
// admin token is looked for.
const DefaultDataDir = "./dproxy-data"

// Flags are the global flags of the admin commands.
type Flags struct {
	Server  string
	Token   string
	DataDir string
	Output  string
}

// Factory builds what commands need, lazily: the connection to the server
// is only resolved when a command talks to it.
type Factory struct {
	IOStreams *IOStreams
	Flags     Flags
	// Getenv reads the environment (os.Getenv; tests replace it).
	Getenv func(string) string
	// AdminClient returns the client of the resolved server and token.
	// Tests replace it with a client of a test server.
	AdminClient func() (*adminclient.Client, error)
}

// NewFactory returns a factory reading the process environment.
func NewFactory(ios *IOStreams) *Factory {
	f := &Factory{IOStreams: ios, Getenv: os.Getenv}
	var (
		client *adminclient.Client
		err    error
	)
	f.AdminClient = func() (*adminclient.Client, error) {
		if client == nil && err == nil {
			var c Connection
			if c, err = f.Connection(); err == nil && c.Token == "" {
				err = &NoTokenError{Server: c.Server, InitialTokenPath: c.InitialTokenPath, ReadErr: c.InitialTokenErr}
			}
			if err == nil {
				client, err = adminclient.New(c.Server, c.Token, adminclient.Options{})
			}
		}
		return client, err
	}
	return f
}

// Connection is the server and token a command uses, and where the token
// came from (for messages).
type Connection struct {
	Server      string
	Token       string
	TokenSource string
	// InitialTokenPath is where the initial admin token was looked for
	// when no other token was configured and the server is on this
	// machine; InitialTokenErr why it could not be read, if it exists.
	InitialTokenPath string
	InitialTokenErr  error
}

// Connection resolves the server (--server, DPROXY_SERVER, the profile,
// DefaultServer) and the token (--token, DPROXY_TOKEN, the profile when it
// is for the same server, then the initial admin token in the data dir when
// the server is on this machine).
func (f *Factory) Connection() (Connection, error) {
	prof, err := LoadProfile(f.Getenv)
	if err != nil {
		return Connection{}, err
	}
	c := Connection{Server: firstNonEmpty(f.Flags.Server, f.Getenv("DPROXY_SERVER"), prof.Server, DefaultServer)}
	c.Server = strings.TrimRight(c.Server, "/")
	switch {
	case f.Flags.Token != "":
		c.Token, c.TokenSource = f.Flags.Token, "--token"
	case f.Getenv("DPROXY_TOKEN") != "":
		c.Token, c.TokenSource = f.Getenv("DPROXY_TOKEN"), "DPROXY_TOKEN"
	case prof.Token != "" && strings.TrimRight(prof.Server, "/") == c.Server:
		c.Token, c.TokenSource = prof.Token, "profile"
	case isLocal(c.Server):
		dir := firstNonEmpty(f.Flags.DataDir, f.Getenv("DPROXY_DATA_DIR"), DefaultDataDir)
		path := filepath.Join(dir, "initial_admin_token")
		c.InitialTokenPath = path
		b, err := os.ReadFile(path)
		switch {
		case err == nil:
			c.Token, c.TokenSource = strings.TrimSpace(string(b)), path
		case errors.Is(err, fs.ErrPermission):
			c.InitialTokenErr = err
		case !errors.Is(err, fs.ErrNotExist):
			return Connection{}, fmt.Errorf("read initial admin token %s: %w", path, err)
		}
	}
	return c, nil
}

// Printer returns the output printer of the -o flag.
func (f *Factory) Printer() (*output.Printer, error) {
	return NewPrinter(f.IOStreams, f.Flags.Output)
}

// NewPrinter returns a printer of format (the value of -o) on ios.Out; an
// unknown format is a usage error.
func NewPrinter(ios *IOStreams, format string) (*output.Printer, error) {
	fm, err := output.ParseFormat(format)
	if err != nil {
		return nil, &FlagError{Err: fmt.Errorf("-o: %w", err)}
	}
	return &output.Printer{Out: ios.Out, TTY: ios.IsStdoutTTY(), Format: fm}, nil
}

// isLocal reports whether a server URL points at this machine; only then
// is the initial admin token file sent to it.
func isLocal(server string) bool {
	u, err := url.Parse(server)
	if err != nil {
		return false
	}
	h := u.Hostname()
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

func firstNonEmpty(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}
