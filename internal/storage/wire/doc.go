// Package wire is the storage stream protocol (docs/protocol.md §12): the frame codec shared by the
// provider (package storage) and its clients, and the client Session that light clients and full
// nodes use to create, authenticate, fetch, release, watch, publish and ask for tips.
//
// Frames: length u32 LE (of type ‖ body, 1..MaxBody+1) ‖ type u8 ‖ body. Decode refuses unknown types,
// trailing bytes and counts or sizes over the bounds (MaxBody, MaxPageCount, MaxGrant, MaxTips, block
// sizes of package tangle); ReadMsg refuses an oversized frame before reading it. A refusal from the
// provider is a typed *Error with a Code.
//
// Session: one request stream, requests serialised by a mutex (one outstanding request, a response
// for each); each Watch opens its own authenticated stream. A transport failure breaks the session
// (ErrSessionClosed); the caller dials again and fetches from its last cursor. Contexts bound every
// call: a cancelled context resets the stream.
package wire
