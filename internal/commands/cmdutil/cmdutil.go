// Package cmdutil holds what every dproxy command shares: the IO streams
// and the mapping of errors to exit codes. It must not import cobra
// command packages, server or tui.
package cmdutil

import (
	"bytes"
	"errors"
	"io"
	"os"
	"strings"
)

// IOStreams are the standard streams of a command; tests use buffers.
type IOStreams struct {
	In     io.Reader
	Out    io.Writer
	ErrOut io.Writer
	// StdinTTY and StdoutTTY override terminal detection (tests).
	StdinTTY  *bool
	StdoutTTY *bool
}

// Test returns streams on buffers: stdin reads in, stdout and stderr are
// returned. The streams are not terminals unless the caller says so.
func Test(in string) (*IOStreams, *bytes.Buffer, *bytes.Buffer) {
	out, errOut := &bytes.Buffer{}, &bytes.Buffer{}
	no := false
	return &IOStreams{In: strings.NewReader(in), Out: out, ErrOut: errOut, StdinTTY: &no, StdoutTTY: &no}, out, errOut
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

// Exit codes.
const (
	ExitOK      = 0
	ExitFailure = 1
	ExitUsage   = 2
)

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
	return ExitFailure
}
