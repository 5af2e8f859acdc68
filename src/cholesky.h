/* Solving small symmetric positive definite systems (the Newton steps of the baselines). */
#ifndef FM_CHOLESKY_H
#define FM_CHOLESKY_H

/* Solves A x = rhs for symmetric positive definite A (P, P), row-major, of which only the lower
 * triangle is read; A is overwritten by its Cholesky factor L (A = L L^T). Returns 0, or -1 when
 * A is not positive definite (x is then undefined). */
int fm_cholesky_solve(double *A, double *x, const double *rhs, int P);

#endif
