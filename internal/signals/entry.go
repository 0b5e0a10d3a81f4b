package signals

// What _gracefulinit_rt0 (entry_linux_amd64.s, entry_linux_arm64.s)
// records before the Go runtime starts, when the binary is linked with
// -ldflags '-E _gracefulinit_rt0' (the Makefile, the Dockerfile and the
// tests do): the signal mask and the signals ignored at exec, as the
// kernel handed them over. The runtime then unblocks some and installs its
// handler over most inherited SIG_IGNs, so nothing read later can tell.
// Without that flag (a plain go install) entryValid stays 0 and
// readStarted falls back to what the runtime has left. So does a cgo or
// externally linked build, whose linker entry is the C library's, not -E.
var (
	entryMask    uint64 // rt_sigprocmask's old set
	entryIgnored uint64 // bit sig-1 set: sig was SIG_IGN
	entryValid   uint32 // 1 once both were read
	//lint:ignore U1000 written by the entry stub only
	entryAct [4]uint64 // rt_sigaction's scratch buffer
)

// EntrySymbol is the linker flag's argument: -ldflags '-E EntrySymbol'.
const EntrySymbol = "_gracefulinit_rt0"
