#include "textflag.h"

// noopHandler is a signal handler that does nothing. The kernel calls it
// on the signal stack with the return address set to sa_restorer, which
// issues rt_sigreturn; it touches no register and no memory.
TEXT ·noopHandler(SB),NOSPLIT|NOFRAME,$0-0
	RET

// func noopHandlerAddr() uintptr
TEXT ·noopHandlerAddr(SB),NOSPLIT,$0-8
	LEAQ ·noopHandler(SB), AX
	MOVQ AX, ret+0(FP)
	RET
