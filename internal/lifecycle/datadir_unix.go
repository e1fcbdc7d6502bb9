//go:build unix

package lifecycle

import (
	"errors"
	"os"
	"syscall"
)

// lockFile takes an flock on f: exclusive or shared, waiting or not. A lock
// held elsewhere answers ErrDataDirInUse when not waiting.
func lockFile(f *os.File, exclusive, wait bool) error {
	how := syscall.LOCK_SH
	if exclusive {
		how = syscall.LOCK_EX
	}
	if !wait {
		how |= syscall.LOCK_NB
	}
	for {
		err := syscall.Flock(int(f.Fd()), how)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, syscall.EINTR):
			continue
		case errors.Is(err, syscall.EWOULDBLOCK):
			return ErrDataDirInUse
		default:
			return err
		}
	}
}
