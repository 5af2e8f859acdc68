#include "src/gemm.h"

#include <cblas.h>
#include <stdatomic.h>

static atomic_int g_use_reference;

void fm_gemm_use_reference(int on) { atomic_store(&g_use_reference, on != 0); }

void fm_gemm(FmTrans trans_a, FmTrans trans_b, int M, int N, int K, float alpha, const float *A,
             int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    if (atomic_load(&g_use_reference)) {
        fm_gemm_reference(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    if (K <= 0) { /* BLAS leaves C untouched when K == 0 only for beta == 1: be explicit */
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) C[(long)i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[(long)i * ldc + j];
        return;
    }
    cblas_sgemm(CblasRowMajor, trans_a == FM_TRANS ? CblasTrans : CblasNoTrans,
                trans_b == FM_TRANS ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda, B, ldb, beta, C,
                ldc);
}

void fm_gemm_reference(FmTrans trans_a, FmTrans trans_b, int M, int N, int K, float alpha,
                       const float *A, int lda, const float *B, int ldb, float beta, float *C,
                       int ldc) {
    for (int i = 0; i < M; i++) {
        for (int j = 0; j < N; j++) {
            double acc = 0.0;
            for (int k = 0; k < K; k++) {
                float a = trans_a == FM_TRANS ? A[(long)k * lda + i] : A[(long)i * lda + k];
                float b = trans_b == FM_TRANS ? B[(long)j * ldb + k] : B[(long)k * ldb + j];
                acc += (double)a * (double)b;
            }
            float *c = &C[(long)i * ldc + j];
            *c = (float)(alpha * acc) + (beta == 0.0f ? 0.0f : beta * *c);
        }
    }
}
