//go:build !linux

package submission

// quickAck does nothing where TCP_QUICKACK does not exist.
func quickAck(rawConn) {}
