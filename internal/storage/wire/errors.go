package wire

import (
	"errors"
	"fmt"
)

// Code is an error frame's code (protocol.md §12.1).
type Code uint8

// Error codes.
const (
	CodeUnauthorized Code = 1  // no or bad authentication, unknown subscription
	CodeNotFound     Code = 2  // nothing at that id
	CodeExpired      Code = 3  // the subscription expired
	CodePending      Code = 4  // the subscription is not active yet (pending payment or grant)
	CodeQuotaFull    Code = 5  // quota or provider disk cap reached: new blocks are refused
	CodeRateLimited  Code = 6  // over a per-client rate limit; retry later
	CodeBadPoW       Code = 7  // a published block's proof of work is insufficient
	CodeBadBlock     Code = 8  // a published block is invalid otherwise
	CodeMalformed    Code = 9  // a frame could not be decoded or is out of place
	CodeRefused      Code = 10 // the provider refuses (limits, admission, not a public node)
	CodeInternal     Code = 11 // the provider failed; retry later
)

var codeNames = map[Code]string{
	CodeUnauthorized: "unauthorized", CodeNotFound: "not found", CodeExpired: "expired", CodePending: "pending",
	CodeQuotaFull: "quota full", CodeRateLimited: "rate limited", CodeBadPoW: "bad proof of work", CodeBadBlock: "bad block",
	CodeMalformed: "malformed", CodeRefused: "refused", CodeInternal: "internal error",
}

func (c Code) String() string {
	if s, ok := codeNames[c]; ok {
		return s
	}
	return fmt.Sprintf("code %d", uint8(c))
}

// Error is a provider's refusal, as carried by an error frame. errors.Is(err, &Error{Code: c}) matches
// any *Error with code c; IsCode is the short form.
type Error struct {
	Code Code
	Msg  string
}

func (e *Error) Error() string {
	if e.Msg == "" {
		return "storage: " + e.Code.String()
	}
	return "storage: " + e.Code.String() + ": " + e.Msg
}

// Is matches another *Error by code.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// IsCode reports whether err is (or wraps) an *Error with code c.
func IsCode(err error, c Code) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == c
}

// Errorf builds an *Error.
func Errorf(c Code, format string, args ...any) *Error {
	return &Error{Code: c, Msg: fmt.Sprintf(format, args...)}
}
