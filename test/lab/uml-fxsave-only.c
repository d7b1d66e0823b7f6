/*
 * Starts a program (User-Mode Linux) with the host's extended FPU state
 * (XSAVE) hidden from its ptrace calls, so that UML falls back to the legacy
 * FXSAVE area for its guests' floating-point registers.
 *
 * Why: UML 6.1 (Debian bookworm's user-mode-linux) reads a guest's XSAVE
 * state into a buffer of a fixed size. On a host whose XSAVE area is larger
 * (AVX-512, AMX), the kernel refuses to set a state of that size
 * (PTRACE_SETREGSET: EFAULT) and the guest panics at boot ("ptrace set fp regs
 * failed, errno = 14"). UML probes for XSAVE support with one
 * PTRACE_GETREGSET(NT_X86_XSTATE) call; this launcher makes that call (and
 * only that one) fail with EIO through a seccomp filter, which UML reads as
 * "no XSAVE support".
 *
 * Usage: uml-fxsave-only /usr/bin/linux.uml ARGS...
 */
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#define PTRACE_GETREGSET_REQUEST 0x4204
#define NT_X86_XSTATE_NOTE 0x202

int main(int argc, char **argv) {
  struct sock_filter filter[] = {
      /* Another architecture: allow. */
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 0, 7),
      /* ptrace(PTRACE_GETREGSET, pid, NT_X86_XSTATE, ...): EIO; anything else: allow. */
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_ptrace, 0, 5),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[0])),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, PTRACE_GETREGSET_REQUEST, 0, 3),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[2])),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, NT_X86_XSTATE_NOTE, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EIO),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  struct sock_fprog program = {sizeof filter / sizeof filter[0], filter};
  if (argc < 2) {
    fprintf(stderr, "usage: %s PROGRAM [ARG...]\n", argv[0]);
    return 2;
  }
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program) != 0) {
    perror("uml-fxsave-only: seccomp");
    return 1;
  }
  execv(argv[1], argv + 1);
  perror("uml-fxsave-only: execv");
  return 127;
}
