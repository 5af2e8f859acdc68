#include "src/vecmath.h"

enum { BLK = FM_VEC_BLOCK };

FM_VEC_CLONES
void fm_vec_exp_sub(float *y, const float *x, float c, size_t n) {
    size_t i = 0;
    for (; i + BLK <= n; i += BLK) {
        float t[BLK];
        for (int j = 0; j < BLK; j++)
            t[j] = fm_vec_exp1(x[i + j] - c);
        memcpy(y + i, t, sizeof t);
    }
    for (; i < n; i++)
        y[i] = fm_vec_exp1(x[i] - c);
}

float fm_vec_reduce_lanes(float *acc) {
    for (int w = BLK / 2; w >= 1; w /= 2)
        for (int j = 0; j < w; j++)
            acc[j] += acc[j + w];
    return acc[0];
}

FM_VEC_CLONES
float fm_vec_sum(const float *x, size_t n) {
    float acc[BLK] = {0};
    size_t i = 0;
    for (; i + BLK <= n; i += BLK)
        for (int j = 0; j < BLK; j++)
            acc[j] += x[i + j];
    for (int j = 0; i < n; i++, j++)
        acc[j] += x[i];
    return fm_vec_reduce_lanes(acc);
}

FM_VEC_CLONES
float fm_vec_dot(const float *a, const float *b, size_t n) {
    float acc[BLK] = {0};
    size_t i = 0;
    for (; i + BLK <= n; i += BLK)
        for (int j = 0; j < BLK; j++)
            acc[j] += a[i + j] * b[i + j];
    for (int j = 0; i < n; i++, j++)
        acc[j] += a[i] * b[i];
    return fm_vec_reduce_lanes(acc);
}

FM_VEC_CLONES
float fm_vec_max(const float *x, size_t n) {
    float acc[BLK];
    for (int j = 0; j < BLK; j++)
        acc[j] = -INFINITY;
    size_t i = 0;
    for (; i + BLK <= n; i += BLK)
        for (int j = 0; j < BLK; j++)
            acc[j] = x[i + j] > acc[j] ? x[i + j] : acc[j];
    for (int j = 0; i < n; i++, j++)
        acc[j] = x[i] > acc[j] ? x[i] : acc[j];
    float m = acc[0];
    for (int j = 1; j < BLK; j++)
        m = acc[j] > m ? acc[j] : m;
    return m;
}

FM_VEC_CLONES
void fm_vec_scale(float *x, float a, size_t n) {
    size_t i = 0;
    for (; i + BLK <= n; i += BLK)
        for (int j = 0; j < BLK; j++)
            x[i + j] *= a;
    for (; i < n; i++)
        x[i] *= a;
}
