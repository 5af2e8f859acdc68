/* The competition mode of the MoE layer (definitions in models/moe_compete.h).
 *
 * Forward: the router's clean logits (for L_R); the tokens grouped by router and gathered in
 * that order (xr); each expert of a router as two GEMMs over all the router's tokens, its
 * outputs kept (dense_eo) and each output row's response computed at once; the K largest
 * responses per token win; the winners' (token, expert) pairs go through the routed layer's
 * dispatch, their outputs copied from dense_eo into the dispatch rows; the combine and the
 * losses. Backward: the winners' hidden activations are recomputed on the dispatch rows (same
 * dropout streams), then the routed layer's per-expert backward runs on gradients that include
 * the weights' dependence on the responses and the diversity loss; L_R trains the router
 * through its softmax and the routed layer's gate backward. */
#include "models/moe_compete.h"

#include <string.h>

#include "models/moe_compete_loss.h"
#include "models/moe_internal.h"
#include "src/activation.h"
#include "src/softmax.h"
#include "src/vecmath.h"

FmCompeteSettings fm_compete_settings_default(void) {
    return (FmCompeteSettings){.router_coef = FM_COMPETE_COEF_DEFAULT,
                               .diversity_coef = FM_COMPETE_COEF_DEFAULT,
                               .balance_coef = FM_COMPETE_COEF_DEFAULT,
                               .winner_weight = 0.0f};
}

/* Row of dense_eo holding local expert j of token t's router on token t. */
static size_t dense_row(const FmMoeCache *c, int t, int j) {
    const int r = c->router[t];
    const int n_r = c->rstart[r + 1] - c->rstart[r];
    return (size_t)c->rstart[r] * c->Er + (size_t)j * n_r + (size_t)(c->pos[t] - c->rstart[r]);
}

/* perm, pos, rstart and xr: the tokens grouped by router, in token order within a router. */
static void group_by_router(FmMoeCache *c) {
    const int T = c->T, R = c->R, D = c->cfg.D;
    int fill[FM_MOE_MAX_MODALITIES + 1] = {0};
    for (int t = 0; t < T; t++)
        fill[c->router[t] + 1]++;
    c->rstart[0] = 0;
    for (int r = 0; r < R; r++)
        c->rstart[r + 1] = c->rstart[r] + fill[r + 1];
    for (int r = 0; r < R; r++)
        fill[r] = c->rstart[r];
    for (int t = 0; t < T; t++) {
        const int i = fill[c->router[t]]++;
        c->perm[i] = t;
        c->pos[t] = i;
        memcpy(c->xr + (size_t)i * D, c->x + (size_t)t * D, (size_t)D * sizeof *c->xr);
    }
}

/* The K winners' output rows of token t (pointers into the dispatch rows c->eo). */
static void winner_outputs(const FmMoeCache *c, int t, const float **o) {
    const int K = c->cfg.K, D = c->cfg.D;
    for (int k = 0; k < K; k++)
        o[k] = c->eo + (size_t)c->row_of[(size_t)t * K + k] * D;
}

void fm_moe_compete_forward(const FmMoe *moe, const FmParams *params, FmMoeCache *cache, float *out,
                            const float *inp, const int *token_modality, int T, int training, FmRng *rng,
                            float winner_weight, FmCompeteAux *aux) {
    FmMoeCache *c = cache;
    const FmMoeConfig *f = &moe->cfg;
    const int D = f->D, K = f->K, E = f->E, M = f->M, Er = c->Er, R = c->R;
    FM_ASSERT(c->can_compete);
    FM_ASSERT(winner_weight >= 0.0f);
    fm_moe_stage_input(moe, c, out, inp, token_modality, T);
    c->competed = 1;
    c->noisy = 0;
    c->dropout_on = training && f->dropout > 0.0f;
    c->winner_weight = winner_weight;
    /* One draw from the caller's stream and the dropout child stream, as fm_moe_forward. */
    if (c->dropout_on) {
        FM_ASSERT(rng != NULL);
        FmRng call = *rng;
        (void)fm_rng_u64(rng);
        c->drop_rng = fm_rng_split(&call, 1);
    }

    /* The router's clean logits and probabilities (its own top-k is overwritten below). */
    float *w[FM_MOE_MAX_MODALITIES], *wn[FM_MOE_MAX_MODALITIES];
    fm_moe_router_tensors(moe, params, 0, w, wn);
    fm_moe_gate_forward(&c->rt, c->x, (const float *const *)w, (const float *const *)wn, D, f->gate, 0,
                        c->rg.coef);
    (void)fm_moe_entropy_forward(&c->as, &c->rt, c->modality, M, E); /* modality_probs of the view */

    /* Every expert on all the tokens of its router; responses row by row. The hidden
     * activations are block scratch (d_pre, d_act, the head of keep), the outputs stay. */
    group_by_router(c);
    for (int r = 0; r < R; r++) {
        const int a = c->rstart[r], n = c->rstart[r + 1] - a;
        if (n == 0) continue;
        for (int j = 0; j < Er; j++) {
            const int e = c->rt.base[r] + j;
            float *eo = c->dense_eo + ((size_t)a * Er + (size_t)j * n) * D;
            fm_moe_expert_forward(moe, params, e, c->xr + (size_t)a * D, n, c->perm + a, 1, c->d_pre,
                                  c->d_act, c->keep, eo, c->dropout_on ? &c->drop_rng : NULL);
            for (int i = 0; i < n; i++)
                c->resp[(size_t)c->perm[a + i] * Er + j] =
                    fm_moe_compete_response(eo + (size_t)i * D, D, c->d_xg);
        }
    }

    /* The competition: S = top-K of s (ties: lowest id), w = s / sum_S s. The routing arrays
     * now describe the winners, so fm_moe_routing reports what produced the output. */
    fm_softmax_forward(c->target, c->resp, NULL, T, Er);
    for (int t = 0; t < T; t++) {
        const float *s = c->resp + (size_t)t * Er;
        int *sel = c->rt.sel + (size_t)t * K;
        fm_moe_gate_select(sel, c->rt.kth + (size_t)t * 2, s, Er, K);
        double sum = 0.0;
        for (int k = 0; k < K; k++)
            sum += s[sel[k]];
        for (int k = 0; k < K; k++) {
            const size_t i = (size_t)t * K + k;
            c->rt.gate[i] = (float)(s[sel[k]] / sum);
            c->rt.sel_logit[i] = c->rt.noisy[(size_t)t * Er + sel[k]];
            c->selected[i] = c->rt.base[c->router[t]] + sel[k];
        }
    }
    fm_moe_dispatch(c);
    for (int i = 0; i < T * K; i++)
        memcpy(c->eo + (size_t)c->row_of[i] * D, c->dense_eo + dense_row(c, i / K, c->rt.sel[i]) * D,
               (size_t)D * sizeof *c->eo);
    fm_moe_combine(c, out);

    /* The losses. */
    const double l_router =
        fm_moe_compete_router_loss(c->rt.prob, c->target, c->rt.sel, T, Er, K, winner_weight);
    double l_div = 0.0;
    const float *o[FM_MOE_MAX_EXPERTS];
    for (int t = 0; t < T; t++) {
        winner_outputs(c, t, o);
        l_div +=
            fm_moe_compete_diversity(o, K, D, c->cmp_norm + (size_t)t * K, c->cmp_cos + (size_t)t * K * K);
    }
    if (T > 0) l_div /= T;
    memset(c->as.importance, 0, (size_t)R * Er * sizeof *c->as.importance);
    memset(c->as.load, 0, (size_t)R * Er * sizeof *c->as.load);
    for (int t = 0; t < T; t++) {
        const int r = c->router[t];
        for (int k = 0; k < K; k++) {
            const size_t i = (size_t)t * K + k;
            c->as.importance[(size_t)r * Er + c->rt.sel[i]] += c->rt.gate[i];
            c->as.load[(size_t)r * Er + c->rt.sel[i]] += 1.0;
        }
    }
    double l_bal = 0.0;
    for (int r = 0; r < R; r++)
        l_bal += fm_moe_cv_squared(c->as.importance + (size_t)r * Er, Er) +
                 fm_moe_cv_squared(c->as.load + (size_t)r * Er, Er);
    c->cmp_losses[0] = (float)l_router;
    c->cmp_losses[1] = (float)l_div;
    c->cmp_losses[2] = (float)l_bal;
    if (aux)
        *aux = (FmCompeteAux){
            .router = c->cmp_losses[0], .diversity = c->cmp_losses[1], .balance = c->cmp_losses[2]};
}

void fm_moe_compete_backward(const FmMoe *moe, FmParams *params, FmMoeCache *cache, float *dinp,
                             const float *dout, float router_coef, float diversity_coef, float balance_coef) {
    FmMoeCache *c = cache;
    const FmMoeConfig *f = &moe->cfg;
    const int T = c->T, D = f->D, H = f->hidden, K = f->K, E = f->E, Er = c->Er, R = c->R;
    const size_t TK = (size_t)T * K, TE = (size_t)T * Er;
    FM_ASSERT(c->competed); /* after fm_moe_forward use fm_moe_backward */
    memset(c->rg.dgate, 0, TK * sizeof *c->rg.dgate);
    memset(c->rg.dnoisy, 0, TE * sizeof *c->rg.dnoisy);
    memset(c->rg.dlogit, 0, TE * sizeof *c->rg.dlogit);
    memset(c->rg.dstd, 0, TE * sizeof *c->rg.dstd);

    /* The winners' hidden activations, recomputed on their dispatch rows. */
    for (int e = 0; e < E; e++) {
        const int r0 = c->start[e], n = c->start[e + 1] - r0;
        if (n == 0) continue;
        fm_moe_expert_forward(moe, params, e, c->xg + (size_t)r0 * D, n, c->pair_of + r0, K,
                              c->hpre + (size_t)r0 * H, c->hact + (size_t)r0 * H,
                              c->dropout_on ? c->keep + (size_t)r0 * H : NULL, NULL,
                              c->dropout_on ? &c->drop_rng : NULL);
    }

    /* The weights w_k = s_k / sum_S s: their gradient from the output (dy . o_k) and from the
     * balance loss (importance_e = sum_t w_te), then
     *   ds_j = (dw_j - sum_k w_k dw_k) / sum_S s   (dw_k/ds_j = (delta_kj - w_k) / sum_S s). */
    double dimp[FM_MOE_MAX_MODALITIES][FM_MOE_MAX_EXPERTS];
    for (int r = 0; r < R; r++) {
        memset(dimp[r], 0, (size_t)Er * sizeof dimp[r][0]);
        if (balance_coef != 0.0f)
            fm_moe_cv_squared_backward(dimp[r], c->as.importance + (size_t)r * Er, Er, balance_coef);
    }
    for (int t = 0; t < T; t++) {
        const int r = c->router[t];
        const int *sel = c->rt.sel + (size_t)t * K;
        const float *s = c->resp + (size_t)t * Er, *dy = dout + (size_t)t * D;
        float *dw = c->cmp_dw + (size_t)t * K, *ds = c->cmp_ds + (size_t)t * K;
        double sum = 0.0, wdw = 0.0;
        for (int k = 0; k < K; k++) {
            const float *o = c->eo + (size_t)c->row_of[(size_t)t * K + k] * D;
            dw[k] = (float)((double)fm_vec_dot(dy, o, (size_t)D) + dimp[r][sel[k]]);
            sum += s[sel[k]];
            wdw += (double)c->rt.gate[(size_t)t * K + k] * dw[k];
        }
        for (int k = 0; k < K; k++)
            ds[k] = (float)(((double)dw[k] - wdw) / sum);
    }

    /* The experts, block by block:
     *   do = w dy                                   (y = sum_k w_k o_k)
     *      + ds sigmoid(o) / D                       (s = mean softplus(o))
     *      + diversity_coef / T * 2 / (K (K - 1)) * d(sum_{a<b} cos)/do */
    const float div_scale =
        K > 1 && T > 0 ? (float)((double)diversity_coef * 2.0 / ((double)K * (K - 1)) / T) : 0.0f;
    const float *o[FM_MOE_MAX_EXPERTS];
    for (int e = 0; e < E; e++) {
        const int r0 = c->start[e], n = c->start[e + 1] - r0;
        if (n == 0) continue;
        for (int i = 0; i < n; i++) {
            const int pair = c->pair_of[r0 + i], t = pair / K, k = pair % K;
            const float *dy = dout + (size_t)t * D, *oe = c->eo + (size_t)(r0 + i) * D;
            const float g = c->rt.gate[pair], dsd = c->cmp_ds[pair] / (float)D;
            float *deo = c->d_eo + (size_t)i * D, *sig = c->d_xg;
            fm_sigmoid_forward(sig, oe, (size_t)D);
            for (int d = 0; d < D; d++)
                deo[d] = g * dy[d] + dsd * sig[d];
            if (div_scale != 0.0f) {
                winner_outputs(c, t, o);
                fm_moe_compete_diversity_backward(deo, k, o, K, D, c->cmp_norm + (size_t)t * K,
                                                  c->cmp_cos + (size_t)t * K * K, div_scale);
            }
        }
        fm_moe_expert_backward(moe, params, c, e, c->d_eo, dinp);
    }

    /* The router: L_R through p = softmax(clean logits), then the gate backward (no noise, and
     * no gate gradient: the router's gates did not make the output). */
    if (router_coef != 0.0f) {
        fm_moe_compete_router_loss_backward(c->cmp_dp, c->rt.prob, c->target, c->rt.sel, T, Er, K,
                                            c->winner_weight, router_coef);
        fm_softmax_backward(c->rg.dlogit, c->cmp_dp, c->rt.prob, T, Er);
    }
    float *w[FM_MOE_MAX_MODALITIES], *wn[FM_MOE_MAX_MODALITIES];
    float *dw[FM_MOE_MAX_MODALITIES], *dwn[FM_MOE_MAX_MODALITIES];
    fm_moe_router_tensors(moe, params, 0, w, wn);
    fm_moe_router_tensors(moe, params, 1, dw, dwn);
    fm_moe_gate_backward(&c->rt, &c->rg, dinp, dw, dwn, c->x, (const float *const *)w,
                         (const float *const *)wn, D, f->gate, 0);
}

void fm_moe_compete_view(const FmMoeCache *cache, FmCompeteView *v) {
    const FmMoeCache *c = cache;
    FM_ASSERT(c->competed);
    v->T = c->T;
    v->K = c->cfg.K;
    v->E_r = c->Er;
    v->response = c->resp;
    v->target = c->target;
    v->router_probs = c->rt.prob;
    v->router_logits = c->rt.logit;
    v->winners = c->rt.sel;
    v->weights = c->rt.gate;
    v->router = c->router;
}

const float *fm_moe_compete_expert_output(const FmMoeCache *cache, int t, int j) {
    FM_ASSERT(cache->competed && t >= 0 && t < cache->T && j >= 0 && j < cache->Er);
    return cache->dense_eo + dense_row(cache, t, j) * cache->cfg.D;
}
