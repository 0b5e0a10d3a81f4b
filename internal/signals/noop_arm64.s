#include "textflag.h"

// noopHandler is a signal handler that does nothing: it returns through
// the link register, which the kernel set to sa_restorer (rt_sigreturn).
TEXT ·noopHandler(SB),NOSPLIT|NOFRAME,$0-0
	RET

// func noopHandlerAddr() uintptr
TEXT ·noopHandlerAddr(SB),NOSPLIT,$0-8
	MOVD $·noopHandler(SB), R0
	MOVD R0, ret+0(FP)
	RET
