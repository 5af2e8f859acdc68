#include "models/patch.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "models/init.h"
#include "src/activation.h"
#include "src/linear.h"

FmStatus fm_patch_declare(FmPatch *pe, int C, int P, int F, int gelu, FmParams *params, const char *prefix,
                          FmError *err) {
    int S = (int)lrint(sqrt((double)C));
    if (C < 1 || S * S != C)
        return FM_FAIL(err, FM_ERR_CONFIG, prefix, "image width %d is not the square of a side", C);
    if (P < 1 || S % P != 0 || F < 1)
        return FM_FAIL(err, FM_ERR_CONFIG, prefix, "patch side %d must divide the image side %d (patch width %d)",
                       P, S, F);
    memset(pe, 0, sizeof *pe);
    pe->S = S;
    pe->P = P;
    pe->F = F;
    pe->gelu = gelu != 0;
    char name[FM_PARAM_NAME_MAX + 32];
    int wshape[2] = {F, P * P};
    snprintf(name, sizeof name, "%s.weight", prefix);
    FmStatus st = fm_params_declare(params, name, 2, wshape, 1, &pe->w, err);
    if (st) return st;
    snprintf(name, sizeof name, "%s.bias", prefix);
    return fm_params_declare(params, name, 1, &F, 0, &pe->b, err);
}

void fm_patch_init(const FmPatch *pe, FmParams *params, FmRng *rng) { fm_init_linear(params, pe->w, pe->b, rng); }

void fm_patch_layout(FmPatchBuffers *buf, FmLayout *l, const FmPatch *pe, int max_images) {
    size_t NP = (size_t)(pe->S / pe->P) * (pe->S / pe->P), PP = (size_t)pe->P * pe->P, N = (size_t)max_images;
    buf->in = fm_layout_floats(l, (pe->gelu ? N * NP : N) * PP);
    buf->pre = fm_layout_floats(l, pe->gelu ? N * NP * pe->F : 0);
    buf->act = fm_layout_floats(l, pe->gelu ? N * NP * pe->F : 0);
    buf->dpre = fm_layout_floats(l, pe->gelu ? N * NP * pe->F : 0);
}

void fm_patch_forward(const FmPatch *pe, const FmParams *params, FmPatchBuffers *buf, float *out,
                      const float *pixels, int N) {
    const int S = pe->S, P = pe->P, G = S / P, NP = G * G, PP = P * P, F = pe->F;
    const float *w = fm_params_data(params, pe->w), *b = fm_params_data(params, pe->b);
    for (int n = 0; n < N; n++) {
        const float *img = pixels + (size_t)n * S * S;
        if (!pe->gelu) {
            float *m = buf->in + (size_t)n * PP;
            memset(m, 0, (size_t)PP * sizeof *m);
            for (int y = 0; y < S; y++)
                for (int x = 0; x < S; x++) m[(y % P) * P + x % P] += img[(size_t)y * S + x];
            for (int i = 0; i < PP; i++) m[i] /= (float)NP;
            continue;
        }
        for (int py = 0; py < G; py++)
            for (int px = 0; px < G; px++) {
                float *dst = buf->in + ((size_t)n * NP + py * G + px) * PP;
                for (int i = 0; i < P; i++)
                    memcpy(dst + i * P, img + (size_t)(py * P + i) * S + px * P, (size_t)P * sizeof *dst);
            }
    }
    if (!pe->gelu) {
        /* out = W mean_p(patch_p) + b */
        fm_linear_forward(out, buf->in, w, b, N, PP, F);
        return;
    }
    /* out = mean_p GELU(W patch_p + b) */
    fm_linear_forward(buf->pre, buf->in, w, b, N * NP, PP, F);
    fm_gelu_forward(buf->act, buf->pre, (size_t)N * NP * F);
    for (int n = 0; n < N; n++) {
        float *o = out + (size_t)n * F;
        memset(o, 0, (size_t)F * sizeof *o);
        for (int p = 0; p < NP; p++)
            for (int f = 0; f < F; f++) o[f] += buf->act[((size_t)n * NP + p) * F + f];
        for (int f = 0; f < F; f++) o[f] /= (float)NP;
    }
}

void fm_patch_backward(const FmPatch *pe, FmParams *params, FmPatchBuffers *buf, const float *dout, int N) {
    const int G = pe->S / pe->P, NP = G * G, PP = pe->P * pe->P, F = pe->F;
    const float *w = fm_params_data(params, pe->w);
    float *dw = fm_params_grad(params, pe->w), *db = fm_params_grad(params, pe->b);
    if (!pe->gelu) {
        fm_linear_backward(NULL, dw, db, dout, buf->in, w, N, PP, F);
        return;
    }
    /* out = mean_p act_p:  dact_p = dout / NP;  act = GELU(pre) */
    float *dact = buf->act; /* the activations are not needed any more: reuse their storage */
    for (int n = 0; n < N; n++)
        for (int p = 0; p < NP; p++)
            for (int f = 0; f < F; f++) dact[((size_t)n * NP + p) * F + f] = dout[(size_t)n * F + f] / (float)NP;
    memset(buf->dpre, 0, (size_t)N * NP * F * sizeof(float));
    fm_gelu_backward(buf->dpre, dact, buf->pre, (size_t)N * NP * F);
    fm_linear_backward(NULL, dw, db, buf->dpre, buf->in, w, N * NP, PP, F);
}
