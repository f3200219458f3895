/*
 * avx2_only.so: run a process as if its CPU had AVX2 but no AVX-512 and no
 * AVX-VNNI, so that libraries which pick their kernels by CPUID (ONNX
 * Runtime's MLAS, oneDNN, torch's ATen dispatch, cpuinfo) pick the AVX2 ones.
 *
 * How: Linux's CPUID faulting (arch_prctl ARCH_SET_CPUID, the "cpuid_fault"
 * flag in /proc/cpuinfo) makes every CPUID instruction of this process raise
 * SIGSEGV. The handler below runs the real CPUID with faulting briefly off,
 * clears the AVX-512 and VNNI bits and the AVX-512 state bits of leaf 0xD,
 * and steps over the instruction. XGETBV does not trap, so libraries that
 * read XCR0 still see ZMM state enabled; every one of them also needs the
 * CPUID feature bit, which is cleared.
 *
 * Used by tools/avx2_only/run.sh for benchmarks only: the AVX2 kernels then
 * run natively on this CPU, which is not the same as an AVX2-only CPU's
 * microarchitecture (clock, caches, port counts), so its speed figures are
 * an approximation of such a CPU; its accuracy figures are exact (the same
 * kernels compute the same numbers).
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#define ARCH_GET_CPUID 0x1011
#define ARCH_SET_CPUID 0x1012

static void set_faulting(int on) { syscall(SYS_arch_prctl, ARCH_SET_CPUID, on ? 0 : 1); }

static void mask(uint32_t leaf, uint32_t sub, uint32_t r[4]) {
    /* r: eax, ebx, ecx, edx */
    if (leaf == 7 && sub == 0) {
        /* EBX: avx512f 16, dq 17, ifma 21, pf 26, er 27, cd 28, bw 30, vl 31 */
        r[1] &= ~((1u << 16) | (1u << 17) | (1u << 21) | (1u << 26) | (1u << 27) | (1u << 28) | (1u << 30) | (1u << 31));
        /* ECX: vbmi 1, vbmi2 6, gfni-512 n/a, vnni 11, bitalg 12, vpopcntdq 14 */
        r[2] &= ~((1u << 1) | (1u << 6) | (1u << 11) | (1u << 12) | (1u << 14));
        /* EDX: 4vnniw 2, 4fmaps 3, vp2intersect 8, amx-bf16 22, avx512fp16 23, amx-tile 24, amx-int8 25 */
        r[3] &= ~((1u << 2) | (1u << 3) | (1u << 8) | (1u << 22) | (1u << 23) | (1u << 24) | (1u << 25));
    } else if (leaf == 7 && sub == 1) {
        /* EAX: avx-vnni 4, avx512_bf16 5, amx-fp16 21, avx-ifma 23 */
        r[0] &= ~((1u << 4) | (1u << 5) | (1u << 21) | (1u << 23));
        /* EDX: avx-vnni-int8 4, avx-ne-convert 5, avx-vnni-int16 10, avx10 19 */
        r[3] &= ~((1u << 4) | (1u << 5) | (1u << 10) | (1u << 19));
    } else if (leaf == 0xD && sub == 0) {
        /* supported XCR0 bits: opmask 5, ZMM_Hi256 6, Hi16_ZMM 7 */
        r[0] &= ~((1u << 5) | (1u << 6) | (1u << 7));
    }
}

static void on_segv(int sig, siginfo_t *info, void *ctx_) {
    ucontext_t *ctx = (ucontext_t *)ctx_;
    greg_t *g = ctx->uc_mcontext.gregs;
    const unsigned char *ip = (const unsigned char *)g[REG_RIP];
    if (ip[0] != 0x0F || ip[1] != 0xA2) { /* not CPUID: a real fault */
        signal(SIGSEGV, SIG_DFL);
        return; /* re-executes and dies as it would have */
    }
    uint32_t leaf = (uint32_t)g[REG_RAX], sub = (uint32_t)g[REG_RCX], r[4];
    set_faulting(0);
    __asm__ volatile("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3]) : "a"(leaf), "c"(sub));
    set_faulting(1);
    mask(leaf, sub, r);
    g[REG_RAX] = r[0]; g[REG_RBX] = r[1]; g[REG_RCX] = r[2]; g[REG_RDX] = r[3];
    g[REG_RIP] += 2;
    (void)sig; (void)info;
}

__attribute__((constructor)) static void init(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigaction(SIGSEGV, &sa, NULL);
    if (syscall(SYS_arch_prctl, ARCH_SET_CPUID, 0) != 0) {
        fprintf(stderr, "avx2_only: this kernel or CPU has no CPUID faulting (no cpuid_fault in /proc/cpuinfo)\n");
        _exit(3);
    }
}
