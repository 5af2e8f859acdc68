#include "src/blas_kernel.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* OpenBLAS extensions, declared in its cblas.h but repeated here to keep the contract visible. */
char *openblas_get_corename(void);
void openblas_set_num_threads(int num_threads);

/* Kernels OpenBLAS falls back to when it does not know a CPU model: no AVX2 code at all. */
static int is_generic_fallback(const char *core) {
    static const char *const fallbacks[] = {"Prescott", "Core2",   "Penryn", "Dunnington", "Nehalem",
                                            "Katmai",   "Northwood", "Banias", "Atom",     "Generic",
                                            "Athlon",   "Opteron", "Barcelona"};
    for (size_t i = 0; i < sizeof fallbacks / sizeof *fallbacks; i++)
        if (strcmp(core, fallbacks[i]) == 0) return 1;
    return 0;
}

const char *fm_blas_best_kernel_for_cpu(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    int avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                 __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
                 __builtin_cpu_supports("avx512cd");
    /* Cooperlake = SkylakeX plus the bf16 kernels; measured faster for SGEMM on such CPUs. */
    if (avx512 && __builtin_cpu_supports("avx512bf16")) return "Cooperlake";
    if (avx512) return "SkylakeX";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "Haswell";
#endif
    return NULL;
}

void fm_blas_select_kernel(char **argv) {
    if (getenv("OPENBLAS_CORETYPE")) return; /* the user's choice stands */
    if (!is_generic_fallback(fm_blas_kernel_name())) return;
    const char *best = fm_blas_best_kernel_for_cpu();
    if (!best) return;
    if (setenv("OPENBLAS_CORETYPE", best, 1) != 0) return;
    execv("/proc/self/exe", argv);
    /* execv only returns on failure: continue with the kernels already loaded. */
    unsetenv("OPENBLAS_CORETYPE");
}

const char *fm_blas_kernel_name(void) {
    const char *name = openblas_get_corename();
    return name ? name : "unknown";
}

void fm_blas_set_threads(int n) { openblas_set_num_threads(n < 1 ? 1 : n); }
