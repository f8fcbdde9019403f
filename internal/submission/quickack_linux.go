package submission

import "syscall"

// quickAck sets TCP_QUICKACK (tcp(7)): the kernel sends an acknowledgement it was delaying at once, and
// acknowledges the next segments without delay. Linux clears the flag by itself, hence once per read.
// An error only means the ACK stays delayed.
func quickAck(raw rawConn) {
	raw.Control(func(fd uintptr) {
		syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_QUICKACK, 1)
	})
}
