/* Core: errors, allocation failure injection, RNG, GEMM shim, parameter arena, Adam, atomic
 * files, HDF5 helpers, OpenBLAS kernel choice. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "src/alloc.h"
#include "src/atomic_file.h"
#include "src/blas_kernel.h"
#include "src/error.h"
#include "src/gemm.h"
#include "src/h5io.h"
#include "src/params.h"
#include "src/params_h5.h"
#include "src/rng.h"
#include "tests/support/testutil.h"

START_TEST(test_error_record) {
    FmError err;
    fm_error_clear(&err);
    FmStatus st = FM_FAIL(&err, FM_ERR_FORMAT, "set-a/1.txt:17", "column %s: expected a number, got \"%s\"",
                          "Value", "1,5");
    ck_assert_int_eq(st, FM_ERR_FORMAT);
    ck_assert_int_eq(err.code, FM_ERR_FORMAT);
    ck_assert_str_eq(err.where, "set-a/1.txt:17");
    ck_assert_str_eq(err.message, "column Value: expected a number, got \"1,5\"");
    ck_assert_ptr_nonnull(err.src_file);
    fm_error_prefix(&err, "reading %s", "set-a");
    ck_assert_str_eq(err.message, "reading set-a: column Value: expected a number, got \"1,5\"");
    ck_assert_int_eq(FM_FAIL(NULL, FM_ERR_IO, NULL, "x"), FM_ERR_IO); /* NULL record is allowed */
}
END_TEST

START_TEST(test_alloc_injection) {
    fm_alloc_fail_after(3);
    void *a = fm_malloc(8), *b = fm_calloc(2, 4), *c = fm_malloc(8), *d = fm_realloc(NULL, 8);
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    ck_assert_ptr_null(c);
    ck_assert_ptr_null(d);
    ck_assert_int_eq(fm_alloc_calls(), 4);
    fm_alloc_fail_reset();
    void *e = fm_malloc(8);
    ck_assert_ptr_nonnull(e);
    ck_assert_ptr_null(fm_malloc_array((size_t)-1, 16)); /* overflow is refused */
    fm_free(a);
    fm_free(b);
    fm_free(e);
    fm_free(NULL);
}
END_TEST

START_TEST(test_rng_deterministic_and_split) {
    FmRng a, b;
    fm_rng_seed(&a, 42);
    fm_rng_seed(&b, 42);
    for (int i = 0; i < 100; i++) ck_assert_uint_eq(fm_rng_u64(&a), fm_rng_u64(&b));
    /* Splitting does not advance the parent and is reproducible. */
    FmRng p;
    fm_rng_seed(&p, 7);
    FmRng before = p;
    FmRng c1 = fm_rng_split(&p, 3), c2 = fm_rng_split(&p, 3), c3 = fm_rng_split(&p, 4);
    ck_assert_mem_eq(&p, &before, sizeof p);
    ck_assert_mem_eq(&c1, &c2, sizeof c1);
    int same = 0;
    for (int i = 0; i < 64; i++) same += fm_rng_u64(&c1) == fm_rng_u64(&c3);
    ck_assert_int_eq(same, 0);
    /* Seeds 1 and 2 give different streams. */
    fm_rng_seed(&a, 1);
    fm_rng_seed(&b, 2);
    ck_assert_uint_ne(fm_rng_u64(&a), fm_rng_u64(&b));
}
END_TEST

START_TEST(test_rng_distributions) {
    FmRng r;
    fm_rng_seed(&r, 123);
    const int n = 200000;
    double sum = 0, sumsq = 0, usum = 0;
    long counts[5] = {0};
    for (int i = 0; i < n; i++) {
        double z = fm_rng_normal(&r);
        sum += z;
        sumsq += z * z;
        double u = fm_rng_uniform(&r);
        ck_assert(u >= 0.0 && u < 1.0);
        usum += u;
        counts[fm_rng_below(&r, 5)]++;
    }
    /* Standard errors: mean 1/sqrt(n) = 0.0022; use 5 sigma. */
    ck_assert_double_le(fabs(sum / n), 0.012);
    ck_assert_double_le(fabs(sumsq / n - 1.0), 0.02);
    ck_assert_double_le(fabs(usum / n - 0.5), 0.0035);
    for (int k = 0; k < 5; k++) ck_assert_double_le(fabs(counts[k] / (double)n - 0.2), 0.0045);
    size_t idx[10];
    for (size_t i = 0; i < 10; i++) idx[i] = i;
    fm_rng_shuffle(&r, idx, 10);
    int seen[10] = {0};
    for (size_t i = 0; i < 10; i++) seen[idx[i]]++;
    for (size_t i = 0; i < 10; i++) ck_assert_int_eq(seen[i], 1);
}
END_TEST

/* fm_gemm through OpenBLAS against the double-accumulating twin, on 300 random shapes with all
 * four transposition cases, padded leading dimensions and alpha/beta. */
START_TEST(test_gemm_matches_reference) {
    FmRng r;
    fm_rng_seed(&r, 2024);
    for (int trial = 0; trial < 300; trial++) {
        int M = 1 + (int)fm_rng_below(&r, 70), N = 1 + (int)fm_rng_below(&r, 70), K = 1 + (int)fm_rng_below(&r, 130);
        FmTrans ta = (FmTrans)fm_rng_below(&r, 2), tb = (FmTrans)fm_rng_below(&r, 2);
        int pad = (int)fm_rng_below(&r, 3);
        int lda = (ta ? M : K) + pad, ldb = (tb ? K : N) + pad, ldc = N + pad;
        int arows = ta ? K : M, brows = tb ? N : K;
        float alpha = trial % 3 == 0 ? 1.0f : 0.5f, beta = trial % 4 == 0 ? 0.0f : 0.75f;
        float *A = malloc(sizeof(float) * arows * lda), *B = malloc(sizeof(float) * brows * ldb);
        float *C1 = malloc(sizeof(float) * M * ldc), *C2 = malloc(sizeof(float) * M * ldc);
        fm_fill_uniform(&r, A, (size_t)arows * lda, -1, 1);
        fm_fill_uniform(&r, B, (size_t)brows * ldb, -1, 1);
        fm_fill_uniform(&r, C1, (size_t)M * ldc, -1, 1);
        memcpy(C2, C1, sizeof(float) * M * ldc);
        fm_gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C1, ldc);
        fm_gemm_reference(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C2, ldc);
        /* float accumulation over K <= 130 terms of size <= 1: observed max error ~3e-6 */
        fm_assert_close(C1, C2, (size_t)M * ldc, 2e-5, 1e-5, "gemm");
        free(A);
        free(B);
        free(C1);
        free(C2);
    }
}
END_TEST

START_TEST(test_gemm_known_values_and_switch) {
    const float A[] = {1, 2, 3, 4, 5, 6};   /* 2x3 */
    const float B[] = {7, 8, 9, 10, 11, 12}; /* 3x2 */
    const float want[] = {58, 64, 139, 154};
    float C[4] = {NAN, NAN, NAN, NAN}; /* beta 0 must not read C */
    fm_gemm(FM_NO_TRANS, FM_NO_TRANS, 2, 2, 3, 1.0f, A, 3, B, 2, 0.0f, C, 2);
    fm_assert_close(C, want, 4, 0, 0, "blas");
    fm_gemm_use_reference(1);
    float D[4] = {NAN, NAN, NAN, NAN};
    fm_gemm(FM_NO_TRANS, FM_NO_TRANS, 2, 2, 3, 1.0f, A, 3, B, 2, 0.0f, D, 2);
    fm_gemm_use_reference(0);
    fm_assert_close(D, want, 4, 0, 0, "reference");
    float E[4] = {1, 1, 1, 1};
    fm_gemm(FM_NO_TRANS, FM_NO_TRANS, 2, 2, 0, 1.0f, A, 3, B, 2, 2.0f, E, 2); /* K = 0: C = beta C */
    const float two[] = {2, 2, 2, 2};
    fm_assert_close(E, two, 4, 0, 0, "k0");
}
END_TEST

START_TEST(test_blas_kernel_reported) {
    const char *name = fm_blas_kernel_name();
    ck_assert_ptr_nonnull(name);
    ck_assert_int_gt((int)strlen(name), 0);
    const char *best = fm_blas_best_kernel_for_cpu();
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw"))
        ck_assert_ptr_nonnull(best);
    if (!__builtin_cpu_supports("avx2")) ck_assert_ptr_null(best);
}
END_TEST

START_TEST(test_params_layout_and_errors) {
    FmParams p;
    fm_params_init(&p);
    FmError err;
    int a, b;
    ck_assert_int_eq(fm_params_declare(&p, "w", 2, (int[]){3, 5}, 1, &a, &err), FM_OK);
    ck_assert_int_eq(fm_params_declare(&p, "b", 1, (int[]){5}, 0, &b, &err), FM_OK);
    ck_assert_int_eq(fm_params_declare(&p, "w", 1, (int[]){1}, 0, NULL, &err), FM_ERR_ARG);
    ck_assert_int_eq(fm_params_declare(&p, "z", 1, (int[]){0}, 0, NULL, &err), FM_ERR_ARG);
    ck_assert_int_eq(fm_params_allocate(&p, 1, &err), FM_OK);
    ck_assert_int_eq(fm_params_find(&p, "b"), b);
    ck_assert_int_eq(fm_params_find(&p, "nope"), -1);
    ck_assert_uint_eq(fm_params_count(&p), 20);
    ck_assert_uint_eq(p.tensors[b].offset % 16, 0);
    ck_assert_int_eq(fm_params_grad(&p, b) - p.grad, fm_params_data(&p, b) - p.data);
    fm_params_free(&p);
}
END_TEST

/* Each allocation in declare/allocate fails in turn: an error comes back and nothing leaks
 * (ASan's leak checker runs at the end of each forked test). */
/* Builds a 40-tensor table with optimiser state; returns the status. */
static FmStatus build_params(FmParams *p, FmError *err) {
    FmStatus st = FM_OK;
    fm_params_init(p);
    for (int i = 0; i < 40 && st == FM_OK; i++) {
        char name[16];
        snprintf(name, sizeof name, "t%d", i);
        st = fm_params_declare(p, name, 1, (int[]){4}, 0, NULL, err);
    }
    return st == FM_OK ? fm_params_allocate(p, 1, err) : st;
}

START_TEST(test_params_alloc_failure) {
    FmParams p;
    FmError err;
    fm_alloc_fail_reset();
    ck_assert_int_eq(build_params(&p, &err), FM_OK);
    long calls = fm_alloc_calls();
    fm_params_free(&p);
    ck_assert_int_ge(calls, 4);
    for (long n = 1; n <= calls; n++) {
        fm_alloc_fail_after(n);
        FmStatus st = build_params(&p, &err);
        fm_alloc_fail_reset();
        ck_assert_int_eq(st, FM_ERR_NOMEM);
        ck_assert_ptr_null(p.data);
        fm_params_free(&p);
    }
}
END_TEST

/* One AdamW step by hand: w=1, g=0.5, lr=0.1, wd=0.01 -> w' = 1 - 0.001 - 0.1 * 1 (m^/sqrt(v^) = 1). */
START_TEST(test_adam_step_and_clip) {
    FmParams p;
    fm_params_init(&p);
    int w, b;
    ck_assert_int_eq(fm_params_declare(&p, "w", 1, (int[]){2}, 1, &w, NULL), FM_OK);
    ck_assert_int_eq(fm_params_declare(&p, "b", 1, (int[]){1}, 0, &b, NULL), FM_OK);
    ck_assert_int_eq(fm_params_allocate(&p, 1, NULL), FM_OK);
    float *wd = fm_params_data(&p, w), *wg = fm_params_grad(&p, w);
    float *bd = fm_params_data(&p, b), *bg = fm_params_grad(&p, b);
    wd[0] = 1.0f; wd[1] = -2.0f; bd[0] = 3.0f;
    wg[0] = 0.5f; wg[1] = -0.25f; bg[0] = 1.0f;
    FmAdamConfig cfg = fm_adam_default();
    cfg.lr = 0.1f;
    cfg.eps = 0.0f;
    cfg.weight_decay = 0.01f;
    fm_adam_step(&p, &cfg, 1);
    const float want_w[] = {1.0f - 0.001f - 0.1f, -2.0f + 0.002f + 0.1f};
    const float want_b[] = {3.0f - 0.1f}; /* no decay on b */
    fm_assert_close(wd, want_w, 2, 1e-6, 0, "adam w");
    fm_assert_close(bd, want_b, 1, 1e-6, 0, "adam b");
    /* Clip: gradient (3, 4, 0) has norm 5; clip to 1 gives (0.6, 0.8, 0). */
    wg[0] = 3; wg[1] = 4; bg[0] = 0;
    ck_assert_double_eq_tol(fm_params_clip_grad(&p, 1.0), 5.0, 1e-9);
    const float want_g[] = {0.6f, 0.8f};
    fm_assert_close(wg, want_g, 2, 1e-6, 0, "clip");
    fm_params_zero_grad(&p);
    ck_assert_double_eq(fm_params_grad_norm(&p), 0.0);
    fm_params_free(&p);
}
END_TEST

START_TEST(test_atomic_file) {
    char dir[256], path[512], tmp[600];
    fm_test_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/out.txt", dir);
    FmError err;
    ck_assert_int_eq(fm_atomic_write_all(path, "old\n", 4, &err), FM_OK);
    FmAtomicFile af;
    ck_assert_int_eq(fm_atomic_open(&af, path, &err), FM_OK);
    fputs("new\n", af.f);
    snprintf(tmp, sizeof tmp, "%s", af.tmp);
    ck_assert_int_eq(access(tmp, F_OK), 0);
    fm_atomic_discard(&af); /* the old contents stay; no temporary is left */
    ck_assert_int_ne(access(tmp, F_OK), 0);
    FILE *f = fopen(path, "r");
    char line[16] = {0};
    ck_assert_ptr_nonnull(fgets(line, sizeof line, f));
    fclose(f);
    ck_assert_str_eq(line, "old\n");
    ck_assert_int_eq(fm_atomic_open(&af, path, &err), FM_OK);
    fputs("new\n", af.f);
    ck_assert_int_eq(fm_atomic_close(&af, &err), FM_OK);
    f = fopen(path, "r");
    ck_assert_ptr_nonnull(fgets(line, sizeof line, f));
    fclose(f);
    ck_assert_str_eq(line, "new\n");
    char missing[600];
    snprintf(missing, sizeof missing, "%s/no/such/dir/x", dir);
    ck_assert_int_eq(fm_atomic_write_all(missing, "x", 1, &err), FM_ERR_IO);
    ck_assert_str_eq(err.where, missing);
    fm_test_rmtree(dir);
}
END_TEST

START_TEST(test_h5io_roundtrip_and_errors) {
    char dir[256], path[512];
    fm_test_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/t.h5", dir);
    FmError err;
    hid_t f;
    ck_assert_int_eq(fm_h5_create(path, &f, &err), FM_OK);
    hid_t g;
    ck_assert_int_eq(fm_h5_group_create(f, "a/b", &g, &err), FM_OK);
    float vals[6] = {1, 2, 3, 4, 5, 6};
    hsize_t dims[2] = {2, 3};
    ck_assert_int_eq(fm_h5_write(g, "x", FM_H5_F32, 2, dims, vals, 1, &err), FM_OK);
    int64_t ids[2] = {7, 9};
    ck_assert_int_eq(fm_h5_write(g, "ids", FM_H5_I64, 1, (hsize_t[]){2}, ids, 0, &err), FM_OK);
    ck_assert_int_eq(fm_h5_write(g, "empty", FM_H5_F32, 2, (hsize_t[]){0, 3}, NULL, 1, &err), FM_OK);
    ck_assert_int_eq(fm_h5_attr_write_str(f, "name", "cohort", &err), FM_OK);
    ck_assert_int_eq(fm_h5_attr_write_i64(f, "version", 3, &err), FM_OK);
    double stats[3] = {0.5, 1.5, -2};
    ck_assert_int_eq(fm_h5_attr_write_f64_array(g, "mean", stats, 3, &err), FM_OK);
    H5Gclose(g);
    H5Fclose(f);

    ck_assert_int_eq(fm_h5_open_read(path, &f, &err), FM_OK);
    hsize_t got[2] = {0, 0};
    void *data;
    ck_assert_int_eq(fm_h5_read(f, path, "a/b/x", FM_H5_F32, 2, got, &data, &err), FM_OK);
    ck_assert_uint_eq(got[0], 2);
    ck_assert_uint_eq(got[1], 3);
    fm_assert_close(data, vals, 6, 0, 0, "h5 x");
    fm_free(data);
    /* Wrong rank, wrong expected size, wrong class, missing dataset. */
    hsize_t r1[1] = {0};
    ck_assert_int_eq(fm_h5_read(f, path, "a/b/x", FM_H5_F32, 1, r1, &data, &err), FM_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(err.message, "expected rank 1, got 2"));
    ck_assert_ptr_nonnull(strstr(err.where, ":/a/b/x"));
    hsize_t r2[2] = {2, 4};
    ck_assert_int_eq(fm_h5_read(f, path, "a/b/x", FM_H5_F32, 2, r2, &data, &err), FM_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(err.message, "dimension 1: expected 4, got 3"));
    hsize_t r3[1] = {0};
    ck_assert_int_eq(fm_h5_read(f, path, "a/b/ids", FM_H5_F32, 1, r3, &data, &err), FM_ERR_FORMAT);
    ck_assert_int_eq(fm_h5_read(f, path, "a/zz/q", FM_H5_F32, 1, r3, &data, &err), FM_ERR_FORMAT);
    ck_assert_str_eq(err.message, "missing dataset");
    hsize_t r4[2] = {0, 0};
    ck_assert_int_eq(fm_h5_read(f, path, "a/b/empty", FM_H5_F32, 2, r4, &data, &err), FM_OK);
    ck_assert_uint_eq(r4[0], 0);
    fm_free(data);
    char *s;
    ck_assert_int_eq(fm_h5_attr_read_str(f, path, "name", &s, &err), FM_OK);
    ck_assert_str_eq(s, "cohort");
    fm_free(s);
    int64_t v;
    ck_assert_int_eq(fm_h5_attr_read_i64(f, path, "version", &v, &err), FM_OK);
    ck_assert_int_eq(v, 3);
    ck_assert_int_eq(fm_h5_attr_read_i64(f, path, "nope", &v, &err), FM_ERR_FORMAT);
    ck_assert_int_eq(fm_h5_attr_read_f64(f, path, "name", (double[]){0}, &err), FM_ERR_FORMAT);
    ck_assert_int_eq(fm_h5_group_open(f, path, "a/b", &g, &err), FM_OK);
    double *arr;
    size_t n;
    ck_assert_int_eq(fm_h5_attr_read_f64_array(g, path, "mean", &arr, &n, &err), FM_OK);
    ck_assert_uint_eq(n, 3);
    ck_assert_double_eq(arr[2], -2);
    fm_free(arr);
    H5Gclose(g);
    H5Fclose(f);
    /* A file that is not HDF5. */
    char bad[600];
    snprintf(bad, sizeof bad, "%s/bad.h5", dir);
    ck_assert_int_eq(fm_atomic_write_all(bad, "not hdf5", 8, &err), FM_OK);
    ck_assert_int_eq(fm_h5_open_read(bad, &f, &err), FM_ERR_FORMAT);
    ck_assert_str_eq(err.where, bad);
    fm_test_rmtree(dir);
}
END_TEST


/* Parameters written and read back; a table with another shape, a missing or an unknown tensor
 * is a mismatch naming the tensor. */
START_TEST(test_params_h5_roundtrip_and_mismatch) {
    char dir[256], path[512];
    fm_test_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/p.h5", dir);
    FmParams p;
    fm_params_init(&p);
    int w, b;
    ck_assert_int_eq(fm_params_declare(&p, "layer.0.w", 2, (int[]){100, 64}, 1, &w, NULL), FM_OK);
    ck_assert_int_eq(fm_params_declare(&p, "layer.0.b", 1, (int[]){3}, 0, &b, NULL), FM_OK);
    ck_assert_int_eq(fm_params_allocate(&p, 0, NULL), FM_OK);
    FmRng r;
    fm_rng_seed(&r, 5);
    fm_fill_uniform(&r, p.data, p.total, -1, 1);
    FmError err;
    hid_t f;
    ck_assert_int_eq(fm_h5_create(path, &f, &err), FM_OK);
    ck_assert_int_eq(fm_params_write_h5(f, &p, p.data, &err), FM_OK);
    H5Fclose(f);

    float *back = calloc(p.total, sizeof(float));
    ck_assert_int_eq(fm_h5_open_read(path, &f, &err), FM_OK);
    ck_assert_int_eq(fm_params_read_h5(f, path, &p, back, &err), FM_OK);
    fm_assert_close(back + p.tensors[w].offset, fm_params_data(&p, w), 6400, 0, 0, "w");
    fm_assert_close(back + p.tensors[b].offset, fm_params_data(&p, b), 3, 0, 0, "b");

    FmParams other;
    fm_params_init(&other);
    ck_assert_int_eq(fm_params_declare(&other, "layer.0.w", 2, (int[]){64, 100}, 1, NULL, NULL), FM_OK);
    ck_assert_int_eq(fm_params_declare(&other, "layer.0.b", 1, (int[]){3}, 0, NULL, NULL), FM_OK);
    ck_assert_int_eq(fm_params_allocate(&other, 0, NULL), FM_OK);
    ck_assert_int_eq(fm_params_read_h5(f, path, &other, other.data, &err), FM_ERR_MISMATCH);
    ck_assert_str_eq(err.message, "parameter layer.0.w: expected shape (64, 100), got (100, 64)");
    ck_assert_str_eq(err.where, path);
    fm_params_free(&other);

    fm_params_init(&other); /* declares only b: w is unknown to it */
    ck_assert_int_eq(fm_params_declare(&other, "layer.0.b", 1, (int[]){3}, 0, NULL, NULL), FM_OK);
    ck_assert_int_eq(fm_params_allocate(&other, 0, NULL), FM_OK);
    ck_assert_int_eq(fm_params_read_h5(f, path, &other, other.data, &err), FM_ERR_MISMATCH);
    ck_assert_str_eq(err.message, "parameter layer.0.w: not part of this model's configuration");
    fm_params_free(&other);

    fm_params_init(&other); /* declares a tensor the file lacks */
    ck_assert_int_eq(fm_params_declare(&other, "layer.1.b", 1, (int[]){3}, 0, NULL, NULL), FM_OK);
    ck_assert_int_eq(fm_params_allocate(&other, 0, NULL), FM_OK);
    ck_assert_int_eq(fm_params_read_h5(f, path, &other, other.data, &err), FM_ERR_MISMATCH);
    ck_assert_str_eq(err.message, "parameter layer.1.b: missing");
    fm_params_free(&other);
    H5Fclose(f);
    free(back);
    fm_params_free(&p);
    fm_test_rmtree(dir);
}
END_TEST


/* Writes one small file through the helpers. */
static void write_sample_h5(const char *path) {
    FmError err;
    hid_t f, g;
    ck_assert_int_eq(fm_h5_create(path, &f, &err), FM_OK);
    ck_assert_int_eq(fm_h5_group_create(f, "a/b", &g, &err), FM_OK);
    float x[1000];
    for (int i = 0; i < 1000; i++) x[i] = (float)i;
    ck_assert_int_eq(fm_h5_write(g, "x", FM_H5_F32, 1, (hsize_t[]){1000}, x, 1, &err), FM_OK);
    ck_assert_int_eq(fm_h5_attr_write_i64(f, "version", 1, &err), FM_OK);
    H5Gclose(g);
    H5Fclose(f);
}

/* The same contents written a second apart give the same bytes (no modification times), so
 * model files and cohorts can be compared byte for byte. */
START_TEST(test_h5io_reproducible_bytes) {
    char dir[256], a[512], b[512], cmd[1200];
    fm_test_tmpdir(dir, sizeof dir);
    snprintf(a, sizeof a, "%s/a.h5", dir);
    snprintf(b, sizeof b, "%s/b.h5", dir);
    write_sample_h5(a);
    sleep(1); /* HDF5 times have one-second resolution */
    write_sample_h5(b);
    snprintf(cmd, sizeof cmd, "cmp -s '%s' '%s'", a, b);
    ck_assert_int_eq(system(cmd), 0);
    fm_test_rmtree(dir);
}
END_TEST

static Suite *core_suite(void) {
    Suite *s = suite_create("core");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_error_record);
    tcase_add_test(tc, test_alloc_injection);
    tcase_add_test(tc, test_rng_deterministic_and_split);
    tcase_add_test(tc, test_rng_distributions);
    tcase_add_test(tc, test_gemm_matches_reference);
    tcase_add_test(tc, test_gemm_known_values_and_switch);
    tcase_add_test(tc, test_blas_kernel_reported);
    tcase_add_test(tc, test_params_layout_and_errors);
    tcase_add_test(tc, test_params_alloc_failure);
    tcase_add_test(tc, test_adam_step_and_clip);
    tcase_add_test(tc, test_atomic_file);
    tcase_add_test(tc, test_h5io_roundtrip_and_errors);
    tcase_add_test(tc, test_h5io_reproducible_bytes);
    tcase_add_test(tc, test_params_h5_roundtrip_and_mismatch);
    suite_add_tcase(s, tc);
    return s;
}

int main(int argc, char **argv) {
    fm_blas_select_kernel(argv); /* test the kernels the program itself would use */
    return fm_test_run_suite(core_suite());
}
