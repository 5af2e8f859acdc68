#include "src/cholesky.h"

#include <math.h>
#include <stddef.h>

int fm_cholesky_solve(double *A, double *x, const double *rhs, int P) {
    for (int j = 0; j < P; j++) { /* A = L L^T, column by column */
        double d = A[(size_t)j * P + j];
        for (int k = 0; k < j; k++) d -= A[(size_t)j * P + k] * A[(size_t)j * P + k];
        if (!(d > 0)) return -1;
        d = sqrt(d);
        A[(size_t)j * P + j] = d;
        for (int i = j + 1; i < P; i++) {
            double s = A[(size_t)i * P + j];
            for (int k = 0; k < j; k++) s -= A[(size_t)i * P + k] * A[(size_t)j * P + k];
            A[(size_t)i * P + j] = s / d;
        }
    }
    for (int i = 0; i < P; i++) { /* L y = rhs */
        double s = rhs[i];
        for (int k = 0; k < i; k++) s -= A[(size_t)i * P + k] * x[k];
        x[i] = s / A[(size_t)i * P + i];
    }
    for (int i = P - 1; i >= 0; i--) { /* L^T x = y */
        double s = x[i];
        for (int k = i + 1; k < P; k++) s -= A[(size_t)k * P + i] * x[k];
        x[i] = s / A[(size_t)i * P + i];
    }
    return 0;
}
