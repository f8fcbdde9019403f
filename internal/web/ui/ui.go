// Package ui holds the web client's static assets: plain HTML, CSS and JavaScript modules, embedded in
// the binary and served by internal/web at "/". There is no build step and nothing is fetched from
// outside the node: the page runs under a strict Content-Security-Policy (script-src 'self', no inline
// scripts or style attributes, no eval), talks only to the node's JSON API (docs/api.md) and its event
// stream, and shows mail HTML only in a sandboxed iframe without scripts or same-origin access.
//
// static/app.js documents the data-test hooks that test/browser drives the client with.
package ui

import (
	"embed"
	"io/fs"
)

//go:embed static
var static embed.FS

// FS is the client's files with index.html at the root.
var FS fs.FS = mustSub(static, "static")

func mustSub(f fs.FS, dir string) fs.FS {
	sub, err := fs.Sub(f, dir)
	if err != nil {
		panic(err) // dir is a constant that go:embed checked at build time
	}
	return sub
}
