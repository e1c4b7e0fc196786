// Package faults lets crash tests kill cnet inside a step: every kernel
// request that changes something (a netlink request, an nftables batch, a
// mount, a file written) calls Point once it is done. Unarmed, Point does
// nothing but read one integer. It is the one package every effectful
// package may import besides internal/netns.
package faults

import (
	"os"
	"sync/atomic"
	"syscall"
)

var (
	armed atomic.Bool
	left  atomic.Int64
)

// Arm makes the process kill itself with SIGKILL right after the n-th
// Point from now on (n = 1: after the next request). Nothing deferred
// runs: this is what a power cut or `kill -9` in the middle of a step
// leaves.
func Arm(n int) {
	left.Store(int64(n))
	armed.Store(n > 0)
}

// Point marks one kernel change done.
func Point() {
	if !armed.Load() {
		return
	}
	if left.Add(-1) == 0 {
		Kill()
	}
}

// Kill sends the process SIGKILL and never returns.
func Kill() {
	// The error can only say the signal was not sent; then nothing else
	// could stop the process either, so block forever rather than go on.
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {} // SIGKILL is not deliverable late; never continue
}
