/* epochs.csv (src/train_log.h). */
#include "src/train_log.h"

#include <math.h>

void fm_train_log_header(FmStrBuf *b, const FmModelConfig *mc, int compete) {
    fm_strbuf_append(b, "epoch,lr,train_loss,train_task_loss");
    for (int t = 0; t < mc->n_tasks; t++) fm_strbuf_appendf(b, ",train_%s_loss", mc->task[t].name);
    fm_strbuf_append(b, ",train_balance,train_entropy");
    if (compete) fm_strbuf_append(b, ",compete_layer_steps,train_compete_router,train_compete_diversity,train_compete_balance");
    fm_strbuf_append(b, ",val_loss");
    for (int t = 0; t < mc->n_tasks; t++) {
        const char *n = mc->task[t].name;
        if (mc->task[t].kind == FM_TASK_REGRESSION)
            fm_strbuf_appendf(b, ",val_%s_mae,val_%s_rmse,val_%s_r2", n, n, n);
        else
            fm_strbuf_appendf(b, ",val_%s_auroc,val_%s_auprc,val_%s_f1", n, n, n);
    }
    fm_strbuf_append(b, ",select,best,train_s,val_s,stays_per_s");
    for (int l = 0; l < mc->layers; l++) {
        fm_strbuf_appendf(b, ",l%d_entropy,l%d_dead,l%d_similarity,l%d_agreement", l, l, l, l);
    }
    fm_strbuf_append(b, "\n");
}

static void num(FmStrBuf *b, double x) {
    if (isnan(x))
        fm_strbuf_append(b, ",nan");
    else
        fm_strbuf_appendf(b, ",%.6g", x);
}

void fm_train_log_row(FmStrBuf *b, const FmModelConfig *mc, const FmEpochRecord *r) {
    fm_strbuf_appendf(b, "%d", r->epoch);
    num(b, r->lr);
    num(b, r->train_loss);
    num(b, r->train_task);
    for (int t = 0; t < mc->n_tasks; t++) num(b, r->train_task_loss[t]);
    num(b, r->train_balance);
    num(b, r->train_entropy);
    if (r->compete) {
        fm_strbuf_appendf(b, ",%ld", r->compete_layer_steps);
        num(b, r->compete_router);
        num(b, r->compete_diversity);
        num(b, r->compete_balance);
    }
    num(b, r->val_loss);
    for (int t = 0; t < mc->n_tasks; t++) {
        const FmTaskSummary *s = &r->val[t];
        if (mc->task[t].kind == FM_TASK_REGRESSION) {
            num(b, s->mae);
            num(b, s->rmse);
            num(b, s->r2);
        } else {
            num(b, s->auroc);
            num(b, s->auprc);
            num(b, s->f1);
        }
    }
    num(b, r->select);
    fm_strbuf_appendf(b, ",%d", r->best);
    num(b, r->train_s);
    num(b, r->val_s);
    num(b, r->stays_per_s);
    for (int l = 0; l < mc->layers; l++) {
        num(b, r->usage_entropy[l]);
        fm_strbuf_appendf(b, ",%d", r->usage_dead[l]);
        num(b, r->similarity[l]);
        num(b, r->agreement[l]);
    }
    fm_strbuf_append(b, "\n");
}
