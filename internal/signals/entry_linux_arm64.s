#include "textflag.h"

// _gracefulinit_rt0: see entry_linux_amd64.s. The runtime's entry reads
// only RSP, which this leaves untouched; R19 and R20 carry the loop.
TEXT _gracefulinit_rt0(SB),NOSPLIT|NOFRAME,$0
	// rt_sigprocmask(SIG_BLOCK, NULL, &entryMask, 8)
	MOVD	$0, R0
	MOVD	$0, R1
	MOVD	$·entryMask(SB), R2
	MOVD	$8, R3
	MOVD	$135, R8
	SVC
	CBNZ	R0, done
	MOVD	$1, R19			// signal number
	MOVD	$0, R20			// ignored signals, bit sig-1
loop:
	// rt_sigaction(sig, NULL, &entryAct, 8)
	MOVD	R19, R0
	MOVD	$0, R1
	MOVD	$·entryAct(SB), R2
	MOVD	$8, R3
	MOVD	$134, R8
	SVC
	CBNZ	R0, next
	MOVD	$·entryAct(SB), R2
	MOVD	(R2), R4		// sa_handler
	CMP	$1, R4			// SIG_IGN
	BNE	next
	SUB	$1, R19, R5
	MOVD	$1, R6
	LSL	R5, R6, R6
	ORR	R6, R20, R20
next:
	ADD	$1, R19, R19
	CMP	$64, R19
	BLE	loop
	MOVD	$·entryIgnored(SB), R2
	MOVD	R20, (R2)
	MOVD	$1, R4
	MOVW	R4, ·entryValid(SB)
done:
	B	_rt0_arm64_linux(SB)
