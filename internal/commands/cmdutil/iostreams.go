package cmdutil

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"
)

// fdOf returns the file descriptor of a stream that is an *os.File.
func fdOf(v any) (int, bool) {
	f, ok := v.(*os.File)
	if !ok {
		return 0, false
	}
	return int(f.Fd()), true
}

// IsStdoutTTY reports whether Out is a terminal; tests set StdoutTTY.
func (s *IOStreams) IsStdoutTTY() bool {
	if s.StdoutTTY != nil {
		return *s.StdoutTTY
	}
	fd, ok := fdOf(s.Out)
	return ok && term.IsTerminal(fd)
}

// IsStdinTTY reports whether In is a terminal; tests set StdinTTY.
func (s *IOStreams) IsStdinTTY() bool {
	if s.StdinTTY != nil {
		return *s.StdinTTY
	}
	fd, ok := fdOf(s.In)
	return ok && term.IsTerminal(fd)
}

// IsStderrTTY reports whether ErrOut is a terminal; tests set StderrTTY.
func (s *IOStreams) IsStderrTTY() bool {
	if s.StderrTTY != nil {
		return *s.StderrTTY
	}
	fd, ok := fdOf(s.ErrOut)
	return ok && term.IsTerminal(fd)
}

// TerminalWidth is the width in columns of the terminal ErrOut is on, 80
// when it cannot be told; tests set Width.
func (s *IOStreams) TerminalWidth() int {
	if s.Width != nil {
		return *s.Width
	}
	if fd, ok := fdOf(s.ErrOut); ok {
		if w, _, err := term.GetSize(fd); err == nil && w > 0 {
			return w
		}
	}
	return 80
}

// ReadSecret reads a secret: from In when it is not a terminal (one line,
// or everything up to EOF, without the trailing newline; nothing past the
// line is consumed, so secrets may be read one line each), else by
// prompting on ErrOut without echo. An empty secret is an error naming
// what was asked for.
func (s *IOStreams) ReadSecret(what string) (string, error) {
	var secret string
	if fd, ok := fdOf(s.In); ok && s.StdinTTY == nil && term.IsTerminal(fd) {
		fmt.Fprintf(s.ErrOut, "%s: ", what)
		b, err := term.ReadPassword(fd)
		fmt.Fprintln(s.ErrOut)
		if err != nil {
			return "", fmt.Errorf("read %s from the terminal: %w", what, err)
		}
		secret = string(b)
	} else {
		line, err := readLine(s.In)
		if err != nil {
			return "", fmt.Errorf("read %s from stdin: %w", what, err)
		}
		secret = strings.TrimRight(line, "\r\n")
	}
	if secret == "" {
		return "", &FlagError{Err: fmt.Errorf("%s is empty: pipe it on stdin (e.g. `printf %%s \"$SECRET\" | dproxy …`) or type it at the prompt", what)}
	}
	return secret, nil
}

// maxSecretLine bounds a secret read from stdin.
const maxSecretLine = 64 << 10

// readLine reads up to and including the next newline, or to EOF, one
// byte at a time so nothing after the line is taken from r.
func readLine(r io.Reader) (string, error) {
	var b strings.Builder
	var c [1]byte
	for b.Len() < maxSecretLine {
		n, err := r.Read(c[:])
		if n == 1 {
			b.WriteByte(c[0])
			if c[0] == '\n' {
				break
			}
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return "", err
		}
	}
	return b.String(), nil
}

// Confirm asks a yes/no question on a terminal; anything but y or yes is no.
func (s *IOStreams) Confirm(question string) (bool, error) {
	fmt.Fprintf(s.ErrOut, "%s [y/N]: ", question)
	line, err := bufio.NewReader(s.In).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return false, fmt.Errorf("read the answer: %w", err)
	}
	a := strings.ToLower(strings.TrimSpace(line))
	return a == "y" || a == "yes", nil
}
