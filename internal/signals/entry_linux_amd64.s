#include "textflag.h"

// _gracefulinit_rt0 is the ELF entry point when the binary is linked with
// -ldflags '-E _gracefulinit_rt0' (see entry.go). It runs before the Go
// runtime, which unblocks and takes over signals before any Go code can
// look: it records the inherited mask and the signals inherited as SIG_IGN
// in package variables (BSS, zeroed by the kernel), then jumps to the
// runtime's own entry with SP and the registers it reads untouched. It
// uses registers and those variables only, never the stack.
TEXT _gracefulinit_rt0(SB),NOSPLIT|NOFRAME,$0
	MOVQ	DX, R12			// the kernel's DX (0 for a static binary), restored below
	// rt_sigprocmask(SIG_BLOCK, NULL, &entryMask, 8)
	MOVQ	$14, AX
	MOVQ	$0, DI
	MOVQ	$0, SI
	LEAQ	·entryMask(SB), DX
	MOVQ	$8, R10
	SYSCALL
	CMPQ	AX, $0
	JNE	done
	MOVQ	$1, R13			// signal number
	MOVQ	$0, R14			// ignored signals, bit sig-1
loop:
	// rt_sigaction(sig, NULL, &entryAct, 8)
	MOVQ	$13, AX
	MOVQ	R13, DI
	MOVQ	$0, SI
	LEAQ	·entryAct(SB), DX
	MOVQ	$8, R10
	SYSCALL
	CMPQ	AX, $0
	JNE	next
	MOVQ	·entryAct(SB), AX	// sa_handler
	CMPQ	AX, $1			// SIG_IGN
	JNE	next
	MOVQ	R13, CX
	DECQ	CX
	MOVQ	$1, AX
	SHLQ	CX, AX
	ORQ	AX, R14
next:
	INCQ	R13
	CMPQ	R13, $64
	JLE	loop
	MOVQ	R14, ·entryIgnored(SB)
	MOVL	$1, ·entryValid(SB)
done:
	MOVQ	R12, DX
	JMP	_rt0_amd64_linux(SB)
