//go:build linux

package main

import (
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// rawTerminal turns off the terminal's line editing and echo on r, if r is a terminal, so that the chat
// sees each key (for typing notices) and echoes the line itself (so that a sent line is not shown
// twice: as typed and as sent). Signals (Ctrl-C) and output processing stay as they are. restore puts
// the terminal back; ok is false if r is not a terminal (nothing changed).
func rawTerminal(r io.Reader) (restore func(), ok bool) {
	f, isFile := r.(*os.File)
	if !isFile {
		return func() {}, false
	}
	fd := int(f.Fd())
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return func() {}, false
	}
	t := *old
	t.Lflag &^= unix.ICANON | unix.ECHO
	t.Cc[unix.VMIN], t.Cc[unix.VTIME] = 1, 0
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &t); err != nil {
		return func() {}, false
	}
	return func() { _ = unix.IoctlSetTermios(fd, unix.TCSETS, old) }, true
}
