//go:build !linux

package registry

import (
	"errors"
	"syscall"
)

// setCork is not available here; responses go out uncorked.
func setCork(syscall.RawConn, bool) error { return errors.ErrUnsupported }
