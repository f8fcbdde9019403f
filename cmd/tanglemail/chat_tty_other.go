//go:build !linux

package main

import "io"

// rawTerminal is a no-op here: the terminal keeps its own line editing, so typing notices are sent
// only when the input delivers a line in pieces.
func rawTerminal(io.Reader) (restore func(), ok bool) { return func() {}, false }
