// Package termlog writes the shutdown summary to the container's
// termination-message file, where `kubectl describe pod` and
// `.status.containerStatuses[].lastState.terminated.message` show it.
package termlog

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// DefaultPath is where Kubernetes mounts the termination-message file
// (terminationMessagePath's default).
const DefaultPath = "/dev/termination-log"

// MaxBytes is Kubernetes' limit for one container's message; the kubelet
// truncates anything longer.
const MaxBytes = 4096

// Resolve picks the file to write: the path the user set (empty disables),
// else DefaultPath when it exists and is writable, so gracefulinit outside Kubernetes never
// creates files in /dev.
func Resolve(path string, set bool) string {
	if set {
		return path
	}
	if fi, err := os.Stat(DefaultPath); err == nil && fi.Mode().IsRegular() && unix.Access(DefaultPath, unix.W_OK) == nil {
		return DefaultPath
	}
	return ""
}

// Write replaces the file's content with msg, cut to MaxBytes (on a UTF-8
// boundary) and ending in a newline. It never blocks: a FIFO or a device
// that would block is an error, not a hang.
func Write(path, msg string) error {
	if path == "" {
		return nil
	}
	msg = Fit(msg)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0o644)
	if err != nil {
		return fmt.Errorf("termination log %s: %w", path, unwrapPath(err))
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		f.Close()
		return fmt.Errorf("termination log %s: not a regular file", path)
	}
	_, werr := f.WriteString(msg)
	cerr := f.Close()
	if err := errors.Join(werr, cerr); err != nil {
		return fmt.Errorf("termination log %s: %w", path, unwrapPath(err))
	}
	return nil
}

// Fit cuts msg to at most MaxBytes, newline included, without splitting a
// UTF-8 sequence.
func Fit(msg string) string {
	if len(msg) > 0 && msg[len(msg)-1] == '\n' {
		msg = msg[:len(msg)-1]
	}
	if len(msg)+1 > MaxBytes {
		cut := MaxBytes - 1 - len("...")
		for cut > 0 && msg[cut]&0xC0 == 0x80 {
			cut--
		}
		msg = msg[:cut] + "..."
	}
	return msg + "\n"
}

func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
