package sockdiag

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// SocketOwner names the process holding the socket with inode ino, as
// "PROGRAM (pid N)", or "" when no process can be found.
func SocketOwner(ino uint32) string {
	if s := owner([]string{strconv.FormatUint(uint64(ino), 10)}); s != "a process" {
		return s
	}
	return ""
}

// owner names the process holding one of the socket inodes.
func owner(inodes []string) string {
	if comm, pid := ownerProcess(inodes); pid != 0 {
		return fmt.Sprintf("%s (pid %d)", comm, pid)
	}
	return "a process"
}

// ownerProcess returns the name and PID of the process holding one of the
// socket inodes, or PID 0 when none can be found.
func ownerProcess(inodes []string) (comm string, pid int) {
	want := map[string]bool{}
	for _, i := range inodes {
		want["socket:["+i+"]"] = true
	}
	procs, _ := os.ReadDir("/proc")
	buf := make([]byte, 64)
	for _, p := range procs {
		if _, err := strconv.Atoi(p.Name()); err != nil {
			continue
		}
		fds, err := os.ReadDir("/proc/" + p.Name() + "/fd")
		if err != nil {
			continue
		}
		for _, fd := range fds {
			n, err := unix.Readlink("/proc/"+p.Name()+"/fd/"+fd.Name(), buf)
			if err == nil && want[string(buf[:n])] {
				comm, _ := os.ReadFile("/proc/" + p.Name() + "/comm")
				pid, _ := strconv.Atoi(p.Name())
				return strings.TrimSpace(string(comm)), pid
			}
		}
	}
	return "", 0
}
