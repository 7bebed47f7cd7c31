package supervise

import (
	"fmt"
	"runtime"
	"syscall"
	"unsafe"
)

// rt_sigprocmask's how, as on amd64, arm64, 386, arm, riscv64, ppc64 and
// s390x (mips and sparc number them otherwise).
const (
	sigBlock   = 0
	sigSetmask = 2
)

// holdsForeground reports whether fd is beatwrap's controlling terminal with
// beatwrap's process group in its foreground. The child then takes the
// foreground in our place: in a process group of its own in the background,
// it would be stopped by SIGTTIN the moment it read from the terminal.
func holdsForeground(fd uintptr) bool {
	var pgrp int32
	_, _, errno := syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TIOCGPGRP, uintptr(unsafe.Pointer(&pgrp)))
	// ENOTTY when fd is not a terminal, or not ours.
	return errno == 0 && int(pgrp) == syscall.Getpgrp()
}

// setForeground puts process group pgrp in the foreground of terminal fd
// (tcsetpgrp). Called from a background group, as beatwrap is while its
// child holds the terminal, the kernel would answer with SIGTTOU to our
// whole group unless the signal is blocked or ignored. It is blocked on this
// thread alone, for the one call: ignoring it would be process-wide, and
// os/signal cannot restore the default afterwards, so every later child
// would inherit SIGTTOU ignored.
func setForeground(fd uintptr, pgrp int) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	block := uint64(1) << (uint(syscall.SIGTTOU) - 1)
	var old uint64
	if _, _, errno := syscall.RawSyscall6(syscall.SYS_RT_SIGPROCMASK, sigBlock,
		uintptr(unsafe.Pointer(&block)), uintptr(unsafe.Pointer(&old)), 8, 0, 0); errno != 0 {
		return fmt.Errorf("block SIGTTOU: %w", errno)
	}
	defer syscall.RawSyscall6(syscall.SYS_RT_SIGPROCMASK, sigSetmask, uintptr(unsafe.Pointer(&old)), 0, 8, 0, 0)
	p := int32(pgrp)
	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TIOCSPGRP, uintptr(unsafe.Pointer(&p))); errno != 0 {
		return fmt.Errorf("set foreground process group: %w", errno)
	}
	return nil
}
