/* Choosing OpenBLAS's kernels.
 *
 * Debian's OpenBLAS 0.3.21 is built with DYNAMIC_ARCH and picks its kernels once, when the
 * library loads, from the CPU model number. On CPUs newer than the release (for example Xeons of
 * model 207 with AVX-512) it does not recognise the model and falls back to its generic Prescott
 * kernels, several times slower. The only way to choose is the OPENBLAS_CORETYPE environment
 * variable, read at load time, so a program that wants the right kernels must set it and
 * re-execute itself before doing any work. */
#ifndef FM_BLAS_KERNEL_H
#define FM_BLAS_KERNEL_H

/* If the user has not set OPENBLAS_CORETYPE, OpenBLAS runs a generic fallback kernel, and this
 * CPU supports a faster one (by its instruction set, read with cpuid), sets OPENBLAS_CORETYPE
 * and re-executes the current program with the same argv (via /proc/self/exe). Returns only
 * when no re-execution was needed or it failed (then the program runs on as it is).
 * Call it first thing in main(), before any thread starts. */
void fm_blas_select_kernel(char **argv);

/* The kernel OpenBLAS is using ("Cooperlake", "SkylakeX", "Haswell", "Prescott"...). */
const char *fm_blas_kernel_name(void);

/* The kernel this CPU's instruction set supports best, or NULL when OpenBLAS's own choice
 * should stand. */
const char *fm_blas_best_kernel_for_cpu(void);

/* Sets the number of OpenBLAS threads (n >= 1). */
void fm_blas_set_threads(int n);

#endif
