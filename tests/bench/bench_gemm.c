/* SGEMM throughput of fm_gemm with OpenBLAS's own kernel choice against the kernel
 * fm_blas_select_kernel picks, measured in one run.
 *
 * OpenBLAS chooses its kernels once, when it loads, so the two choices cannot share a process:
 * the benchmark re-runs itself as two child processes, both with OPENBLAS_CORETYPE removed from
 * the environment, one left alone ("default") and one calling fm_blas_select_kernel first
 * ("selected"), reads their measurements through a pipe and prints one table. Each child also
 * checks fm_gemm against the double-accumulating fm_gemm_reference on a few shapes covering the
 * four transposition cases, and fails (so the benchmark fails) on a mismatch.
 *
 *   bench_gemm [--reps N] [--threads N]     (defaults: 10 timed calls per shape, 1 thread)
 *
 * One OpenBLAS thread by default so that numbers from a shared machine stay comparable. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "src/alloc.h"
#include "src/blas_kernel.h"
#include "src/gemm.h"
#include "src/rng.h"

typedef struct {
    int M, N, K;
    FmTrans ta, tb;
    const char *what;
} Shape;

/* The shapes timed: a square reference and the expert FFN products of a batch of 32 stays with
 * 144 tokens each (4608 tokens, width 128, hidden 512), forward and weight gradient. */
static const Shape BENCH_SHAPES[] = {
    {1024, 1024, 1024, FM_NO_TRANS, FM_NO_TRANS, "square"},
    {4608, 512, 128, FM_NO_TRANS, FM_TRANS, "FFN in (x W1^T)"},
    {4608, 128, 512, FM_NO_TRANS, FM_TRANS, "FFN out (h W2^T)"},
    {512, 128, 4608, FM_TRANS, FM_NO_TRANS, "dW1 (dh^T x)"},
};
#define N_BENCH ((int)(sizeof BENCH_SHAPES / sizeof *BENCH_SHAPES))

/* Shapes checked against the reference: odd sizes, all transposition cases. */
static const Shape CHECK_SHAPES[] = {
    {67, 45, 129, FM_NO_TRANS, FM_NO_TRANS, "NN"},
    {128, 96, 200, FM_TRANS, FM_NO_TRANS, "TN"},
    {33, 250, 64, FM_NO_TRANS, FM_TRANS, "NT"},
    {256, 255, 257, FM_TRANS, FM_TRANS, "TT"},
};
#define N_CHECK ((int)(sizeof CHECK_SHAPES / sizeof *CHECK_SHAPES))

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static float *random_matrix(FmRng *rng, size_t n) {
    float *x = fm_malloc_array(n, sizeof *x);
    if (!x) {
        fprintf(stderr, "bench_gemm: out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(2.0 * fm_rng_uniform(rng) - 1.0);
    return x;
}

/* Child: time every shape, check against the reference, print "key value" lines. */
static int run_child(const char *mode, int reps, int threads) {
    fm_blas_set_threads(threads);
    printf("mode %s\nkernel %s\n", mode, fm_blas_kernel_name());
    FmRng rng;
    fm_rng_seed(&rng, 1);
    int status = 0;
    for (int c = 0; c < N_CHECK; c++) {
        const Shape *s = &CHECK_SHAPES[c];
        int lda = s->ta ? s->M : s->K, ldb = s->tb ? s->K : s->N;
        float *A = random_matrix(&rng, (size_t)s->M * s->K), *B = random_matrix(&rng, (size_t)s->K * s->N);
        float *C = random_matrix(&rng, (size_t)s->M * s->N),
              *R = fm_malloc_array((size_t)s->M * s->N, sizeof *R);
        if (!R) return 1;
        memcpy(R, C, sizeof *R * (size_t)s->M * s->N);
        fm_gemm(s->ta, s->tb, s->M, s->N, s->K, 0.5f, A, lda, B, ldb, 0.25f, C, s->N);
        fm_gemm_reference(s->ta, s->tb, s->M, s->N, s->K, 0.5f, A, lda, B, ldb, 0.25f, R, s->N);
        double worst = 0.0;
        for (size_t i = 0; i < (size_t)s->M * s->N; i++)
            worst = fmax(worst, fabs((double)C[i] - R[i]));
        /* Entries are sums of K products of uniforms in [-1, 1] (size ~ sqrt(K / 9)); float
         * accumulation errs by well under 1e-5 K; a wrong kernel errs by O(1). */
        int ok = worst <= 1e-5 * s->K;
        printf("check %s %dx%dx%d %.3g %s\n", s->what, s->M, s->N, s->K, worst, ok ? "ok" : "FAILED");
        if (!ok) status = 1;
        fm_free(A);
        fm_free(B);
        fm_free(C);
        fm_free(R);
    }
    double *t = fm_malloc_array((size_t)reps, sizeof *t);
    if (!t) return 1;
    for (int b = 0; b < N_BENCH; b++) {
        const Shape *s = &BENCH_SHAPES[b];
        int lda = s->ta ? s->M : s->K, ldb = s->tb ? s->K : s->N;
        float *A = random_matrix(&rng, (size_t)s->M * s->K), *B = random_matrix(&rng, (size_t)s->K * s->N);
        float *C = random_matrix(&rng, (size_t)s->M * s->N);
        fm_gemm(s->ta, s->tb, s->M, s->N, s->K, 1.0f, A, lda, B, ldb, 0.0f, C, s->N); /* warm-up */
        for (int r = 0; r < reps; r++) {
            double t0 = now_seconds();
            fm_gemm(s->ta, s->tb, s->M, s->N, s->K, 1.0f, A, lda, B, ldb, 0.0f, C, s->N);
            t[r] = now_seconds() - t0;
        }
        qsort(t, (size_t)reps, sizeof *t, cmp_double);
        double flop = 2.0 * s->M * s->N * s->K;
        printf("gflops %d %.2f %.2f\n", b, flop / t[0] * 1e-9, flop / t[reps / 2] * 1e-9);
        fm_free(A);
        fm_free(B);
        fm_free(C);
    }
    fm_free(t);
    fflush(stdout);
    return status;
}

typedef struct {
    char kernel[64];
    double best[N_BENCH], median[N_BENCH];
    char checks[N_CHECK][128];
    int ok;
} ChildResult;

/* Parent: runs this program as a child in `mode` and parses what it prints. */
static int spawn_child(const char *mode, const char *reps, const char *threads, ChildResult *res) {
    memset(res, 0, sizeof *res);
    int fd[2];
    if (pipe(fd) != 0) return -1;
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        close(fd[0]);
        dup2(fd[1], STDOUT_FILENO);
        close(fd[1]);
        unsetenv("OPENBLAS_CORETYPE"); /* both children start from OpenBLAS's own choice */
        char *args[] = {"bench_gemm", "--child",   (char *)mode,    "--reps",
                        (char *)reps, "--threads", (char *)threads, NULL};
        execv("/proc/self/exe", args);
        _exit(127);
    }
    close(fd[1]);
    FILE *in = fdopen(fd[0], "r");
    if (!in) return -1;
    char line[256];
    int n_checks = 0, n_rows = 0;
    res->ok = 1;
    while (fgets(line, sizeof line, in)) {
        int b;
        double best, median;
        if (sscanf(line, "kernel %63s", res->kernel) == 1) continue;
        if (sscanf(line, "gflops %d %lf %lf", &b, &best, &median) == 3 && b >= 0 && b < N_BENCH) {
            res->best[b] = best;
            res->median[b] = median;
            n_rows++;
        } else if (strncmp(line, "check ", 6) == 0 && n_checks < N_CHECK) {
            line[strcspn(line, "\n")] = 0;
            snprintf(res->checks[n_checks++], sizeof res->checks[0], "%s", line + 6);
            if (strstr(line, "FAILED")) res->ok = 0;
        }
    }
    fclose(in);
    int wstatus;
    while (waitpid(pid, &wstatus, 0) < 0)
        if (errno != EINTR) return -1;
    if (!WIFEXITED(wstatus) || WEXITSTATUS(wstatus) != 0 || n_rows != N_BENCH || n_checks != N_CHECK)
        res->ok = 0;
    return 0;
}

int main(int argc, char **argv) {
    /* No fm_blas_select_kernel here: the parent does no BLAS work and its children choose. */
    const char *reps = "10", *threads = "1", *child = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--child") == 0 && i + 1 < argc)
            child = argv[++i];
        else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc)
            reps = argv[++i];
        else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
            threads = argv[++i];
        else {
            fprintf(stderr, "usage: bench_gemm [--reps N] [--threads N]\n");
            return 2;
        }
    }
    int n_reps = atoi(reps), n_threads = atoi(threads);
    if (n_reps < 1 || n_threads < 1) {
        fprintf(stderr, "bench_gemm: --reps and --threads take positive integers\n");
        return 2;
    }
    if (child) {
        if (strcmp(child, "selected") == 0) fm_blas_select_kernel(argv); /* may re-execute */
        return run_child(child, n_reps, n_threads);
    }

    ChildResult def, sel;
    if (spawn_child("default", reps, threads, &def) != 0 ||
        spawn_child("selected", reps, threads, &sel) != 0) {
        fprintf(stderr, "bench_gemm: cannot run the child processes: %s\n", strerror(errno));
        return 1;
    }
    printf("SGEMM through fm_gemm (row-major, float), %d OpenBLAS thread%s, best of %d calls "
           "(median in brackets), GFLOP/s = 2 M N K / time\n\n",
           n_threads, n_threads == 1 ? "" : "s", n_reps);
    printf("%-28s %-18s %-26s %-26s %s\n", "M x N x K", "product", "OpenBLAS default",
           "fm_blas_select_kernel", "speed-up");
    printf("%-28s %-18s %-26s %-26s\n", "", "", def.kernel, sel.kernel);
    for (int b = 0; b < N_BENCH; b++) {
        const Shape *s = &BENCH_SHAPES[b];
        char dims[64], c1[64], c2[64];
        snprintf(dims, sizeof dims, "%d x %d x %d (%s%s)", s->M, s->N, s->K, s->ta ? "T" : "N",
                 s->tb ? "T" : "N");
        snprintf(c1, sizeof c1, "%8.1f (%.1f)", def.best[b], def.median[b]);
        snprintf(c2, sizeof c2, "%8.1f (%.1f)", sel.best[b], sel.median[b]);
        printf("%-28s %-18s %-26s %-26s %.2fx\n", dims, s->what, c1, c2,
               def.best[b] > 0 ? sel.best[b] / def.best[b] : 0.0);
    }
    printf("\nfm_gemm vs fm_gemm_reference (max |difference|, bound 1e-5 K):\n");
    for (int c = 0; c < N_CHECK; c++)
        printf("  %-10s %-40s %-10s %s\n", def.kernel, def.checks[c], sel.kernel, sel.checks[c]);
    if (!def.ok || !sel.ok) {
        fprintf(stderr, "bench_gemm: a child failed or its results do not match the reference\n");
        return 1;
    }
    return 0;
}
