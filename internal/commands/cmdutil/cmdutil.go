// Package cmdutil holds what every dproxy command shares: the IO streams
// and the mapping of errors to exit codes. It must not import cobra
// command packages, server or tui.
package cmdutil

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/dproxy/dproxy/internal/adminclient"
)

// IOStreams are the standard streams of a command; tests use buffers.
type IOStreams struct {
	In     io.Reader
	Out    io.Writer
	ErrOut io.Writer
	// StdinTTY, StdoutTTY and StderrTTY override terminal detection, and
	// Width the terminal's width in columns (tests).
	StdinTTY  *bool
	StdoutTTY *bool
	StderrTTY *bool
	Width     *int
}

// Test returns streams on buffers: stdin reads in, stdout and stderr are
// returned. The streams are not terminals unless the caller says so.
func Test(in string) (*IOStreams, *bytes.Buffer, *bytes.Buffer) {
	out, errOut := &bytes.Buffer{}, &bytes.Buffer{}
	no := false
	return &IOStreams{In: strings.NewReader(in), Out: out, ErrOut: errOut, StdinTTY: &no, StdoutTTY: &no, StderrTTY: &no}, out, errOut
}

// System returns the process's streams.
func System() *IOStreams {
	return &IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}
}

// ExitError carries a specific exit code (for example 3 for a threshold
// check) with its message.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string { return e.Err.Error() }
func (e *ExitError) Unwrap() error { return e.Err }

// FlagError is a usage mistake: a bad flag or argument.
type FlagError struct{ Err error }

func (e *FlagError) Error() string { return e.Err.Error() }
func (e *FlagError) Unwrap() error { return e.Err }

// Exit codes; docs/cli/README.md lists them for operators.
const (
	ExitOK      = 0
	ExitFailure = 1 // the command failed; stderr says why
	ExitUsage   = 2 // a mistake on the command line: nothing was done
	// ExitAuth: no token was found, or the server refused it.
	ExitAuth = 4
	// ExitInterrupted: Ctrl-C or SIGTERM stopped the command (128 + SIGINT).
	ExitInterrupted = 130
)

// NoTokenError means no API token was found for the server: nothing was
// sent. Its message says how to get one.
type NoTokenError struct {
	Server string
	// InitialTokenPath is where the initial admin token was looked for
	// ("" when the server is not on this machine, so it was not).
	InitialTokenPath string
	// ReadErr is why that file could not be read, if it exists.
	ReadErr error
}

func (e *NoTokenError) Error() string {
	msg := fmt.Sprintf("no API token for %s: run `dproxy login --server %s`, or set DPROXY_TOKEN to a token with the api scope", e.Server, e.Server)
	switch {
	case e.InitialTokenPath == "":
		return msg
	case e.ReadErr != nil:
		return msg + fmt.Sprintf("; the server's initial admin token %s cannot be read (%v): run as the user that runs `dproxy serve`", e.InitialTokenPath, e.ReadErr)
	}
	return msg + fmt.Sprintf("; on the server's machine, --data-dir (or DPROXY_DATA_DIR) names its data dir, where `dproxy serve` writes initial_admin_token (looked for %s)", e.InitialTokenPath)
}

// ExitCode maps an error returned by a command to the process exit code.
func ExitCode(err error) int {
	if err == nil {
		return ExitOK
	}
	var ee *ExitError
	if errors.As(err, &ee) {
		return ee.Code
	}
	var fe *FlagError
	if errors.As(err, &fe) {
		return ExitUsage
	}
	var nt *NoTokenError
	var ua *adminclient.UnauthorizedError
	if errors.As(err, &nt) || errors.As(err, &ua) {
		return ExitAuth
	}
	return ExitFailure
}
