// Package termlog writes the shutdown summary to the container's
// termination-message file, where `kubectl describe pod` and
// `.status.containerStatuses[].lastState.terminated.message` show it.
//
// The file is the app's as much as gracefulinit's: a message the app wrote
// is never overwritten (Take records the file before the app starts,
// Snapshot.Write compares), and the supervisor writes only when it caused
// the exit, so after a crash the file stays as the app left it and the
// kubelet's FallbackToLogsOnError still shows the log's tail.
package termlog

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
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
// else DefaultPath when it exists, is a regular file (not a link) and is
// writable, so gracefulinit outside Kubernetes never creates files in /dev.
func Resolve(path string, set bool) string {
	if set {
		return path
	}
	if fi, err := os.Lstat(DefaultPath); err == nil && fi.Mode().IsRegular() && unix.Access(DefaultPath, unix.W_OK) == nil {
		return DefaultPath
	}
	return ""
}

// Check refuses a path gracefulinit will not write: a symbolic link (its
// target could be any file PID 1 may write) or something that exists and is
// not a regular file. A missing file is fine (Write creates it), but not a
// missing directory: the summary would be lost at the very end.
func Check(path string) error {
	if path == "" {
		return nil
	}
	fi, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		dir := filepath.Dir(path)
		if _, err := os.Stat(dir); err != nil {
			return fmt.Errorf("termination log %s: directory %s: %w: create it, or point --termination-log at an existing directory", path, dir, unwrapPath(err))
		}
		return writable(path, dir)
	case err != nil:
		return fmt.Errorf("termination log %s: %w", path, unwrapPath(err))
	case fi.Mode()&fs.ModeSymlink != 0:
		return fmt.Errorf("termination log %s is a symbolic link, which gracefulinit does not follow: point it at the file itself", path)
	case !fi.Mode().IsRegular():
		return fmt.Errorf("termination log %s: not a regular file", path)
	}
	return writable(path, path)
}

// writable refuses a path whose file (or directory, for a new file) cannot
// be written: a read-only mount, or permissions for a user other than root.
func writable(path, target string) error {
	if err := unix.Access(target, unix.W_OK); err != nil {
		return fmt.Errorf("termination log %s: %w: point --termination-log at a writable place", path, err)
	}
	return nil
}

// Snapshot is the termination-message file as it was before the app
// started; the zero value (no path) writes nothing.
type Snapshot struct {
	path   string
	before fileID
}

// fileID tells one version of a file from another without reading it.
type fileID struct {
	dev, ino uint64
	size     int64
	mtime    unix.Timespec
	exists   bool
}

func stat(path string) fileID {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return fileID{}
	}
	return fileID{dev: uint64(st.Dev), ino: st.Ino, size: st.Size, mtime: st.Mtim, exists: true}
}

// Take records path before the app starts; "" disables.
func Take(path string) Snapshot {
	if path == "" {
		return Snapshot{}
	}
	return Snapshot{path: path, before: stat(path)}
}

// Path is the file's path; "" when disabled.
func (s Snapshot) Path() string { return s.path }

// AppWrote reports whether the file holds a message written since Take:
// it is not empty and no longer the file Take saw.
func (s Snapshot) AppWrote() bool {
	if s.path == "" {
		return false
	}
	now := stat(s.path)
	return now.exists && now.size > 0 && now != s.before
}

// ErrAppWrote is Snapshot.Write's answer when the app left a message.
var ErrAppWrote = errors.New("the app wrote its own termination message: left as it is")

// Write puts msg in the file unless the app wrote a message there since
// Take (then ErrAppWrote, and the file is untouched).
func (s Snapshot) Write(msg string) error {
	if s.path == "" {
		return nil
	}
	if s.AppWrote() {
		return ErrAppWrote
	}
	return Write(s.path, msg)
}

// Write replaces the file's content with msg, cut to MaxBytes (on a UTF-8
// boundary) and ending in a newline. It never blocks: a FIFO or a device
// that would block is an error, not a hang. A symbolic link is not
// followed (O_NOFOLLOW): its target could be any file PID 1 may write.
func Write(path, msg string) error {
	if path == "" {
		return nil
	}
	msg = Fit(msg)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|syscall.O_NONBLOCK|syscall.O_NOCTTY|syscall.O_NOFOLLOW, 0o644)
	if errors.Is(err, syscall.ELOOP) {
		return fmt.Errorf("termination log %s is a symbolic link, which gracefulinit does not follow: point it at the file itself", path)
	}
	if err != nil {
		return fmt.Errorf("termination log %s: %w", path, unwrapPath(err))
	}
	// Truncate only once it is known to be a regular file: O_TRUNC on a
	// device or FIFO is not ours to do.
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		f.Close()
		return fmt.Errorf("termination log %s: not a regular file", path)
	}
	terr := f.Truncate(0)
	_, werr := f.WriteString(msg)
	cerr := f.Close()
	if err := errors.Join(terr, werr, cerr); err != nil {
		return fmt.Errorf("termination log %s: %w", path, unwrapPath(err))
	}
	return nil
}

// Fit cuts msg to at most MaxBytes, newline included, without splitting a
// UTF-8 sequence. What comes first survives: callers put the decisive
// fields there.
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
