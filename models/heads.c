#include "models/heads.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "models/init.h"
#include "src/activation.h"
#include "src/dropout.h"
#include "src/linear.h"

static int valid_name(const char *s) {
    if (!*s) return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '_')) return 0;
    return 1;
}

FmStatus fm_heads_check_tasks(int n_labels, int n_tasks, const FmTaskConfig *tasks, FmError *err) {
    if (n_tasks < 1 || n_tasks > FM_MAX_TASKS)
        return FM_FAIL(err, FM_ERR_CONFIG, "head", "%d tasks, expected 1 to %d", n_tasks, FM_MAX_TASKS);
    if (n_labels < 1) return FM_FAIL(err, FM_ERR_CONFIG, "head", "%d label columns", n_labels);
    for (int t = 0; t < n_tasks; t++) {
        const FmTaskConfig *k = &tasks[t];
        const char *nm = k->name;
        if (strnlen(nm, FM_TASK_NAME_MAX) >= FM_TASK_NAME_MAX || !valid_name(nm) || strcmp(nm, "mlp") == 0)
            return FM_FAIL(err, FM_ERR_CONFIG, "head", "task %d: name \"%.*s\" must be 1 to %d letters, digits or _ "
                           "(and not \"mlp\")", t, FM_TASK_NAME_MAX - 1, nm, FM_TASK_NAME_MAX - 1);
        if (k->kind != FM_TASK_BINARY && k->kind != FM_TASK_REGRESSION && k->kind != FM_TASK_MULTILABEL)
            return FM_FAIL(err, FM_ERR_CONFIG, nm, "unknown task kind %d", (int)k->kind);
        if (k->n < 1 || (k->kind != FM_TASK_MULTILABEL && k->n != 1))
            return FM_FAIL(err, FM_ERR_CONFIG, nm, "%d label columns (binary and regression tasks have 1)", k->n);
        if (k->label0 < 0 || k->label0 + k->n > n_labels)
            return FM_FAIL(err, FM_ERR_CONFIG, nm, "label columns %d..%d outside the %d labels", k->label0,
                           k->label0 + k->n - 1, n_labels);
        if (!(k->weight >= 0.0f) || !(k->pos_weight > 0.0f) || !(k->huber_delta >= 0.0f) || !isfinite(k->weight) ||
            !isfinite(k->pos_weight) || !isfinite(k->huber_delta))
            return FM_FAIL(err, FM_ERR_CONFIG, nm, "weight %g, pos_weight %g, huber_delta %g: need weight >= 0, "
                           "pos_weight > 0, huber_delta >= 0", (double)k->weight, (double)k->pos_weight,
                           (double)k->huber_delta);
        for (int u = 0; u < t; u++) {
            const FmTaskConfig *o = &tasks[u];
            if (strcmp(o->name, nm) == 0) return FM_FAIL(err, FM_ERR_CONFIG, nm, "task name used twice");
            if (k->label0 < o->label0 + o->n && o->label0 < k->label0 + k->n)
                return FM_FAIL(err, FM_ERR_CONFIG, nm, "label columns overlap those of task %s", o->name);
        }
    }
    return FM_OK;
}

FmStatus fm_heads_declare(FmHeads *heads, int P, int hidden, float dropout, int n_labels, int n_tasks,
                          const FmTaskConfig *tasks, FmParams *params, FmError *err) {
    memset(heads, 0, sizeof *heads);
    if (P < 1 || hidden < 1) return FM_FAIL(err, FM_ERR_CONFIG, "head", "widths %d and %d must be >= 1", P, hidden);
    if (!(dropout >= 0.0f && dropout < 1.0f))
        return FM_FAIL(err, FM_ERR_CONFIG, "head", "dropout %g not in [0, 1)", (double)dropout);
    FmStatus st = fm_heads_check_tasks(n_labels, n_tasks, tasks, err);
    if (st) return st;
    heads->P = P;
    heads->hidden = hidden;
    heads->dropout = dropout;
    heads->n_labels = n_labels;
    heads->n_tasks = n_tasks;
    memcpy(heads->task, tasks, (size_t)n_tasks * sizeof *tasks);
    int w1[2] = {hidden, P}, w2[2] = {P, hidden};
    if ((st = fm_params_declare(params, "head.mlp.fc1.weight", 2, w1, 1, &heads->fc1_w, err)) ||
        (st = fm_params_declare(params, "head.mlp.fc1.bias", 1, &hidden, 0, &heads->fc1_b, err)) ||
        (st = fm_params_declare(params, "head.mlp.fc2.weight", 2, w2, 1, &heads->fc2_w, err)) ||
        (st = fm_params_declare(params, "head.mlp.fc2.bias", 1, &P, 0, &heads->fc2_b, err)))
        return st;
    for (int t = 0; t < n_tasks; t++) {
        char name[FM_PARAM_NAME_MAX];
        int wo[2] = {tasks[t].n, P};
        snprintf(name, sizeof name, "head.%s.weight", tasks[t].name);
        if ((st = fm_params_declare(params, name, 2, wo, 1, &heads->out_w[t], err))) return st;
        snprintf(name, sizeof name, "head.%s.bias", tasks[t].name);
        if ((st = fm_params_declare(params, name, 1, &tasks[t].n, 0, &heads->out_b[t], err))) return st;
    }
    return FM_OK;
}

void fm_heads_init(const FmHeads *heads, FmParams *params, FmRng *rng) {
    fm_init_linear(params, heads->fc1_w, heads->fc1_b, rng);
    fm_init_linear(params, heads->fc2_w, heads->fc2_b, rng);
    for (int t = 0; t < heads->n_tasks; t++) fm_init_linear(params, heads->out_w[t], heads->out_b[t], rng);
}

void fm_heads_layout(FmHeadsBuffers *buf, FmLayout *l, const FmHeads *heads, int max_B) {
    const size_t B = (size_t)max_B;
    buf->a1 = fm_layout_floats(l, B * heads->hidden);
    buf->g1 = fm_layout_floats(l, B * heads->hidden);
    buf->keep = fm_layout_u8(l, B * heads->hidden);
    buf->h1 = fm_layout_floats(l, B * heads->P);
    buf->logits = fm_layout_floats(l, B * heads->n_labels);
    buf->pred = fm_layout_floats(l, B * heads->n_labels);
    buf->dlogits = fm_layout_floats(l, B * heads->n_labels);
    buf->dh1 = fm_layout_floats(l, B * heads->P);
    buf->dg1 = fm_layout_floats(l, B * heads->hidden);
    buf->da1 = fm_layout_floats(l, B * heads->hidden);
}

static float sigmoidf(float z) { return z >= 0.0f ? 1.0f / (1.0f + expf(-z)) : expf(z) / (1.0f + expf(z)); }

/* log(1 + e^z) without overflow, in double for the loss sum */
static double softplus(double z) { return (z > 0.0 ? z : 0.0) + log1p(exp(-fabs(z))); }

void fm_heads_forward(const FmHeads *heads, const FmParams *params, FmHeadsBuffers *buf, const float *h0, int B,
                      int training, FmRng *rng) {
    const int P = heads->P, Hd = heads->hidden, NL = heads->n_labels;
    /* h1 = h0 + W2 Dropout(GELU(W1 h0 + b1)) + b2 */
    fm_linear_forward(buf->a1, h0, fm_params_data(params, heads->fc1_w), fm_params_data(params, heads->fc1_b), B, P,
                      Hd);
    fm_gelu_forward(buf->g1, buf->a1, (size_t)B * Hd);
    buf->dropped = training && heads->dropout > 0.0f;
    if (buf->dropped) fm_dropout_forward(buf->g1, buf->keep, buf->g1, (size_t)B * Hd, heads->dropout, rng);
    fm_linear_forward(buf->h1, buf->g1, fm_params_data(params, heads->fc2_w), fm_params_data(params, heads->fc2_b), B,
                      Hd, P);
    for (size_t i = 0; i < (size_t)B * P; i++) buf->h1[i] += h0[i];
    /* z_t = W_t h1 + b_t into the task's columns */
    for (size_t i = 0; i < (size_t)B * NL; i++) {
        buf->logits[i] = 0.0f;
        buf->pred[i] = NAN;
    }
    for (int t = 0; t < heads->n_tasks; t++) {
        const FmTaskConfig *k = &heads->task[t];
        const float *w = fm_params_data(params, heads->out_w[t]), *bias = fm_params_data(params, heads->out_b[t]);
        for (int b = 0; b < B; b++) {
            for (int j = 0; j < k->n; j++) {
                const float *wr = w + (size_t)j * P, *h = buf->h1 + (size_t)b * P;
                float z = bias[j];
                for (int p = 0; p < P; p++) z += wr[p] * h[p];
                const size_t at = (size_t)b * NL + k->label0 + j;
                buf->logits[at] = z;
                buf->pred[at] = k->kind == FM_TASK_REGRESSION ? z : sigmoidf(z);
            }
        }
    }
}

void fm_heads_loss(const FmHeads *heads, FmHeadsBuffers *buf, const float *label, const uint8_t *label_mask, int B,
                   FmTaskLosses *losses) {
    const int NL = heads->n_labels;
    memset(losses, 0, sizeof *losses);
    memset(buf->dlogits, 0, (size_t)B * NL * sizeof(float));
    for (int t = 0; t < heads->n_tasks; t++) {
        const FmTaskConfig *k = &heads->task[t];
        int known = 0;
        for (int b = 0; b < B; b++)
            for (int j = 0; j < k->n; j++) known += label_mask[(size_t)b * NL + k->label0 + j] != 0;
        losses->known[t] = known;
        if (known == 0) continue;
        const double inv = 1.0 / known, wt = k->weight;
        double sum = 0.0;
        for (int b = 0; b < B; b++) {
            for (int j = 0; j < k->n; j++) {
                const size_t at = (size_t)b * NL + k->label0 + j;
                if (!label_mask[at]) continue;
                const double z = buf->logits[at], y = label[at];
                double l, dz;
                if (k->kind == FM_TASK_REGRESSION) {
                    const double e = z - y, d = k->huber_delta;
                    if (d <= 0.0) {
                        l = e * e;
                        dz = 2.0 * e;
                    } else if (fabs(e) < d) {
                        l = 0.5 * e * e;
                        dz = e;
                    } else {
                        l = d * (fabs(e) - 0.5 * d);
                        dz = e > 0.0 ? d : -d;
                    }
                } else {
                    /* l = w+ y softplus(-z) + (1 - y) softplus(z);
                     * dl/dz = w+ y (sigmoid(z) - 1) + (1 - y) sigmoid(z) */
                    const double pw = k->pos_weight, sg = 1.0 / (1.0 + exp(-z));
                    l = pw * y * softplus(-z) + (1.0 - y) * softplus(z);
                    dz = pw * y * (sg - 1.0) + (1.0 - y) * sg;
                }
                sum += l;
                buf->dlogits[at] = (float)(wt * inv * dz);
            }
        }
        losses->loss[t] = sum * inv;
        losses->total += wt * losses->loss[t];
    }
}

void fm_heads_backward(const FmHeads *heads, FmParams *params, FmHeadsBuffers *buf, float *dh0, const float *h0,
                       int B) {
    const int P = heads->P, Hd = heads->hidden, NL = heads->n_labels;
    /* z_t = W_t h1 + b_t:  dh1 = sum_t dz_t W_t;  dW_t += dz_t^T h1;  db_t += sum dz_t */
    memset(buf->dh1, 0, (size_t)B * P * sizeof(float));
    for (int t = 0; t < heads->n_tasks; t++) {
        const FmTaskConfig *k = &heads->task[t];
        const float *w = fm_params_data(params, heads->out_w[t]);
        float *dw = fm_params_grad(params, heads->out_w[t]), *db = fm_params_grad(params, heads->out_b[t]);
        for (int b = 0; b < B; b++) {
            const float *h = buf->h1 + (size_t)b * P;
            float *dh = buf->dh1 + (size_t)b * P;
            for (int j = 0; j < k->n; j++) {
                const float dz = buf->dlogits[(size_t)b * NL + k->label0 + j];
                if (dz == 0.0f) continue;
                db[j] += dz;
                for (int p = 0; p < P; p++) {
                    dw[(size_t)j * P + p] += dz * h[p];
                    dh[p] += dz * w[(size_t)j * P + p];
                }
            }
        }
    }
    /* h1 = h0 + W2 g1 + b2:  dh0 += dh1;  dg1 = dh1 W2 */
    for (size_t i = 0; i < (size_t)B * P; i++) dh0[i] += buf->dh1[i];
    memset(buf->dg1, 0, (size_t)B * Hd * sizeof(float));
    fm_linear_backward(buf->dg1, fm_params_grad(params, heads->fc2_w), fm_params_grad(params, heads->fc2_b), buf->dh1,
                       buf->g1, fm_params_data(params, heads->fc2_w), B, Hd, P);
    /* g1 = Dropout(GELU(a1)) */
    if (buf->dropped) {
        /* dg1 through the mask, in place: the dropout backward accumulates, so go through da1 */
        memset(buf->da1, 0, (size_t)B * Hd * sizeof(float));
        fm_dropout_backward(buf->da1, buf->dg1, buf->keep, (size_t)B * Hd, heads->dropout);
        memcpy(buf->dg1, buf->da1, (size_t)B * Hd * sizeof(float));
    }
    memset(buf->da1, 0, (size_t)B * Hd * sizeof(float));
    fm_gelu_backward(buf->da1, buf->dg1, buf->a1, (size_t)B * Hd);
    /* a1 = W1 h0 + b1 */
    fm_linear_backward(dh0, fm_params_grad(params, heads->fc1_w), fm_params_grad(params, heads->fc1_b), buf->da1, h0,
                       fm_params_data(params, heads->fc1_w), B, P, Hd);
}
