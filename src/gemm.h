/* Matrix multiply: one entry point over OpenBLAS, with a plain-C twin.
 *
 * Row-major throughout: C (M, N) = alpha * op(A) (M, K) @ op(B) (K, N) + beta * C, where op(X)
 * is X or its transpose. lda/ldb/ldc are row strides of the matrices as stored. All layers call
 * fm_gemm; tests can switch the whole process to the reference twin with fm_gemm_use_reference
 * to compare the optimised path against a simple one. */
#ifndef FM_GEMM_H
#define FM_GEMM_H

typedef enum { FM_NO_TRANS = 0, FM_TRANS = 1 } FmTrans;

/* C = alpha op(A) op(B) + beta C through cblas_sgemm (or the twin, see below). With beta == 0
 * C is overwritten without being read, so it may hold NaN. M, N or K may be 0. */
void fm_gemm(FmTrans trans_a, FmTrans trans_b, int M, int N, int K, float alpha, const float *A,
             int lda, const float *B, int ldb, float beta, float *C, int ldc);

/* The plain-C twin: same contract, accumulates each dot product in double. */
void fm_gemm_reference(FmTrans trans_a, FmTrans trans_b, int M, int N, int K, float alpha,
                       const float *A, int lda, const float *B, int ldb, float beta, float *C,
                       int ldc);

/* Routes fm_gemm to the reference twin (on != 0) or back to OpenBLAS (on == 0). Process-wide;
 * meant for tests. */
void fm_gemm_use_reference(int on);

#endif
