/* Training one study run (src/train.h). */
#include "src/train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "models/compete_schedule.h"
#include "models/model_file.h"
#include "models/moe_compete.h"
#include "models/moe_diagnostics.h"
#include "preprocessing/cohort.h"
#include "src/alloc.h"
#include "src/atomic_file.h"
#include "src/baseline.h"
#include "src/blas_kernel.h"
#include "src/checkpoint.h"
#include "src/dist.h"
#include "src/evaluate.h"
#include "src/evaluate_csv.h"
#include "src/evaluate_dist.h"
#include "src/evaluate_experts.h"
#include "src/evaluate_report.h"
#include "src/evaluate_usage.h"
#include "src/interrupt.h"
#include "src/json_out.h"
#include "src/lr_schedule.h"
#include "src/params.h"
#include "src/rng.h"
#include "src/strbuf.h"
#include "src/train_batch.h"
#include "src/train_folder.h"
#include "src/train_model_file.h"
#include "src/train_order.h"
#include "src/train_spec.h"
#include "src/train_study.h"

/* Random streams split off the root generator of train.seed (ASCII tags, so no stream is
 * shared with another use of the same seed). */
#define STREAM_INIT 0x494e4954u    /* "INIT": the model's initial parameters */
#define STREAM_ORDER 0x4f524452u   /* "ORDR": the order of epoch e (sub-stream e) */
#define STREAM_FORWARD 0x46574444u /* "FWDD": batch j of epoch e (sub-streams e, then j) */

/* Running sums of the epoch in progress (saved in checkpoints as text). */
typedef struct {
    double stays;                /* training stays seen this epoch */
    double total, task, part[FM_MAX_TASKS], balance, entropy; /* stay-weighted loss sums */
    double train_s;              /* seconds of training this epoch */
    double total_train_s;        /* seconds of training over the run */
    double val_s, test_s;        /* seconds of validation over the run, and of the test */
    double lr;                   /* rate of the last step */
    /* competition this epoch: (step, layer) pairs, batches that competed, their loss sums */
    double compete_layer_steps, compete_batches, compete_router, compete_diversity, compete_balance;
} Sums;

typedef struct {
    const FmTrainOptions *opt;
    const FmConfig *cfg;
    char path[8][FM_PATH_MAX]; /* run folder files, by the PATH_* index */
    FmStudyData d;      /* cohort, spec, split and the stays of its parts */
    FmTrainOrder order; /* epoch order and micro-batches */
    FmDist *dist;       /* NULL: one process */
    int writer;         /* this process writes the run folder (rank 0) */
    int64_t *batch_idx; /* (batch_size) */
    FmModel *model;
    FmModelWorkspace *ws;
    FmTrainBatch tb;
    FmPredictions val_pred, test_pred;
    FmExpertUsage usage;
    FmExpertProbe probe; /* expert similarity and agreement, in either training mode */
    FmStrBuf log;
    char *config_text;
    FmTrainInfo info;
    FmRng root;
    /* schedule */
    int B, accumulation, epochs, patience;
    long batches_per_epoch, steps_per_epoch, total_steps, checkpoint_every;
    FmLrSchedule sched;
    FmAdamConfig adam;
    double clip;
    FmSelectMetric select;
    int compete; /* competition.enabled */
    FmCompeteSchedule compete_schedule;
    FmCompeteSettings compete_settings;
    /* position */
    long epochs_done, steps_done, best_epoch, bad_epochs;
    double best_metric;
    Sums sums;
    int has_checkpoint; /* a checkpoint of this run is on disk */
} Run;

enum { PATH_CONFIG, PATH_EPOCHS, PATH_MODEL, PATH_PREDICTIONS, PATH_METRICS, PATH_TIMING, PATH_CHECKPOINT };

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

static void run_free(Run *r) {
    fm_study_data_close(&r->d);
    fm_train_order_free(&r->order);
    fm_free(r->batch_idx);
    fm_model_workspace_free(r->ws);
    fm_model_free(r->model);
    fm_train_batch_free(&r->tb);
    fm_evaluate_predictions_free(&r->val_pred);
    fm_evaluate_predictions_free(&r->test_pred);
    fm_evaluate_usage_free(&r->usage);
    fm_evaluate_experts_free(&r->probe);
    fm_strbuf_free(&r->log);
    fm_free(r->config_text);
    fm_train_info_free(&r->info);
}

static void notify(Run *r, FmTrainEvent *ev) {
    ev->epochs = r->epochs;
    ev->total_steps = r->total_steps;
    if (r->opt->observer) r->opt->observer(r->opt->observer_ctx, ev);
}

/* ---- set-up ---- */

/* Where a key was set, for messages ("" when it has its default). */
static const char *key_where(const FmConfig *cfg, const char *key) {
    const char *where = fm_config_where(cfg, key);
    return strcmp(where, "default") == 0 ? "" : where;
}

/* The rows of the stays this process reads: all of them for one process; for a rank, its
 * training shards (src/train_order.h) and its blocks of the validation and test stays
 * (src/evaluate_dist.h). */
static FmStatus load_rows(Run *r, FmError *err) {
    const int rank = fm_dist_rank(r->dist), size = fm_dist_size(r->dist);
    if (size == 1) return fm_cohort_load_rows(&r->d.cohort, r->d.cohort_path, NULL, err);
    uint8_t *pos = fm_calloc((size_t)r->d.n_train + 1, 1), *want = fm_calloc((size_t)r->d.cohort.N + 1, 1);
    if (!pos || !want) {
        fm_free(pos);
        fm_free(want);
        return FM_FAIL(err, FM_ERR_NOMEM, NULL, "out of memory");
    }
    fm_train_order_mark(&r->order, rank, size, pos);
    for (int64_t i = 0; i < r->d.n_train; i++)
        if (pos[i]) want[r->d.train[i]] = 1;
    const int64_t *part[2] = {r->d.val, r->d.test};
    const int64_t n_part[2] = {r->d.n_val, r->d.n_test};
    for (int k = 0; k < 2; k++) {
        int64_t lo, hi;
        fm_evaluate_dist_block(n_part[k], r->B, rank, size, &lo, &hi);
        for (int64_t i = lo; i < hi; i++) want[part[k][i]] = 1;
    }
    FmStatus st = fm_cohort_load_rows(&r->d.cohort, r->d.cohort_path, want, err);
    fm_free(pos);
    fm_free(want);
    return st;
}

static FmStatus setup(Run *r, FmError *err) {
    const FmConfig *cfg = r->cfg;
    FmStatus st = fm_config_check(cfg, err);
    if (st != FM_OK) return st;
    /* The run folder */
    const char *dir = r->opt->out_dir;
    static const char *const NAMES[] = {FM_TRAIN_CONFIG_FILE,  FM_TRAIN_EPOCHS_FILE,  FM_TRAIN_MODEL_FILE,
                                        FM_TRAIN_PREDICTIONS_FILE, FM_TRAIN_METRICS_FILE, FM_TRAIN_TIMING_FILE,
                                        FM_TRAIN_CHECKPOINT_FILE};
    for (int i = 0; i < 7; i++)
        if (snprintf(r->path[i], FM_PATH_MAX, "%s/%s", dir, NAMES[i]) >= FM_PATH_MAX)
            return FM_FAIL(err, FM_ERR_ARG, dir, "path too long");
    if (r->writer && !r->opt->resume &&
        (file_exists(r->path[PATH_CHECKPOINT]) || file_exists(r->path[PATH_MODEL]) || file_exists(r->path[PATH_METRICS])))
        return FM_FAIL(err, FM_ERR_ARG, dir,
                       "the folder holds a run already; pass --resume to continue it, or choose another --out");
    /* The cohort (its rows come below, once the stays this process reads are known), the
     * split, the model's view of it, the training subset */
    fm_rng_seed(&r->root, (uint64_t)fm_config_int(cfg, "train.seed"));
    if ((st = fm_study_data_open(&r->d, cfg, &r->root, err)) != FM_OK) return st;

    /* Schedule */
    r->B = (int)fm_config_int(cfg, "train.batch_size");
    r->accumulation = (int)fm_config_int(cfg, "train.accumulation");
    r->epochs = (int)fm_config_int(cfg, "train.epochs");
    r->patience = (int)fm_config_int(cfg, "train.patience");
    r->checkpoint_every = fm_config_int(cfg, "train.checkpoint_every");
    const int shards = (int)fm_config_int(cfg, "train.shards"), ranks = fm_dist_size(r->dist);
    if (shards > r->d.n_train)
        return FM_FAIL(err, FM_ERR_CONFIG, key_where(cfg, "train.shards"),
                       "[train] shards: %d shards of %lld training stays", shards, (long long)r->d.n_train);
    if (r->accumulation < ranks)
        return FM_FAIL(err, FM_ERR_CONFIG, key_where(cfg, "train.accumulation"),
                       "[train] accumulation: %d, but %d ranks share each optimiser step by whole micro-batches "
                       "of train.batch_size stays: set accumulation to a multiple of %d (for the same global batch, "
                       "divide batch_size by as much)", r->accumulation, ranks, ranks);
    if ((st = fm_train_order_init(&r->order, r->d.n_train, r->B, shards, err)) != FM_OK) return st;
    if ((st = load_rows(r, err)) != FM_OK) return st;
    r->batches_per_epoch = r->order.n_batches;
    r->steps_per_epoch = (r->batches_per_epoch + r->accumulation - 1) / r->accumulation;
    r->total_steps = r->steps_per_epoch * r->epochs;
    long warm = (long)floor(fm_config_float(cfg, "train.warmup_fraction") * (double)r->total_steps);
    if (warm >= r->total_steps) warm = r->total_steps - 1;
    r->sched = (FmLrSchedule){.kind = fm_config_enum(cfg, "train.schedule") == 0 ? FM_SCHEDULE_CONSTANT
                                                                                 : FM_SCHEDULE_COSINE,
                              .base_lr = (float)fm_config_float(cfg, "train.lr"),
                              .total_steps = r->total_steps,
                              .warmup_steps = warm,
                              .final_fraction = 0.0f};
    r->adam = fm_adam_default();
    r->adam.weight_decay = (float)fm_config_float(cfg, "train.weight_decay");
    r->clip = fm_config_float(cfg, "train.clip_norm");
    r->select = (FmSelectMetric)fm_config_enum(cfg, "train.select_metric");
    fm_blas_set_threads((int)fm_config_int(cfg, "train.threads"));

    /* The model and every buffer, sized once */
    if ((st = fm_model_create(&r->model, &r->d.spec.model, 1, err)) != FM_OK) return st;
    FmRng init = fm_rng_split(&r->root, STREAM_INIT);
    fm_model_init(r->model, fm_rng_u64(&init));
    int cap = r->B;
    FmModelShape shape;
    fm_train_batch_shape(&r->d.cohort, &r->d.spec, cap, &shape);
    r->compete = fm_config_bool(cfg, "competition.enabled");
    if (r->compete) {
        /* The schedule draws from its own stream of train.seed, step by step. */
        if ((st = fm_compete_schedule_init(&r->compete_schedule, fm_config_float(cfg, "competition.warmup_fraction"),
                                           fm_config_float(cfg, "competition.omega"),
                                           (int)fm_config_int(cfg, "competition.max_layers"), r->total_steps,
                                           (uint64_t)fm_config_int(cfg, "train.seed"), err)) != FM_OK)
            return st;
        r->compete_settings = fm_compete_settings_default();
        r->compete_settings.router_coef = (float)fm_config_float(cfg, "competition.router_coef");
        r->compete_settings.diversity_coef = (float)fm_config_float(cfg, "competition.diversity_coef");
        r->compete_settings.balance_coef = (float)fm_config_float(cfg, "competition.balance_coef");
    }
    if ((st = (r->compete ? fm_model_workspace_create_compete : fm_model_workspace_create)(&r->ws, r->model, &shape,
                                                                                          err)) ||
        (st = fm_train_batch_alloc(&r->tb, &r->d.cohort, &r->d.spec, cap, err)) ||
        (st = fm_evaluate_predictions_alloc(&r->val_pred, r->d.n_val, r->d.spec.n_labels, err)) ||
        (st = fm_evaluate_predictions_alloc(&r->test_pred, r->d.n_test, r->d.spec.n_labels, err)) ||
        (st = fm_evaluate_usage_create(&r->usage, r->model, err)) ||
        (st = fm_evaluate_experts_create(&r->probe, r->model, FM_EVALUATE_EXPERTS_CHUNK, err)))
        return st;
    r->batch_idx = fm_malloc_array((size_t)r->B, sizeof *r->batch_idx);
    if (!r->batch_idx) return FM_FAIL(err, FM_ERR_NOMEM, NULL, "out of memory for the epoch order");
    if ((st = fm_config_to_ini(cfg, &r->config_text, err)) != FM_OK) return st;

    /* What the model file records besides the model */
    r->info.n_labels = r->d.spec.n_labels;
    for (int j = 0; j < r->d.spec.n_labels; j++) {
        memcpy(r->info.label_name[j], r->d.spec.label[j].name, FM_TRAIN_LABEL_NAME_MAX); /* same size */
        r->info.threshold[j] = NAN;
    }
    fm_train_info_bind(&r->info);
    r->info.los_log_offset_days = r->d.cohort.settings.los_log_offset_days;
    r->info.split = r->d.split;
    r->info.seed = fm_config_int(cfg, "train.seed");
    if (!(r->info.config_text = fm_strdup(r->config_text))) return FM_FAIL(err, FM_ERR_NOMEM, NULL, "out of memory");
    r->best_metric = NAN;
    return FM_OK;
}

/* ---- checkpoints ---- */

static char *sums_text(const Sums *s) {
    FmStrBuf b;
    fm_strbuf_init(&b);
    const double v[] = {s->stays,          s->total,           s->task,           s->balance,
                        s->entropy,        s->train_s,         s->total_train_s,  s->val_s,
                        s->test_s,         s->lr,              s->compete_layer_steps, s->compete_batches,
                        s->compete_router, s->compete_diversity, s->compete_balance};
    fm_strbuf_append(&b, "sums2");
    for (size_t i = 0; i < sizeof v / sizeof *v; i++) {
        fm_strbuf_append(&b, " ");
        fm_strbuf_append_double(&b, v[i]);
    }
    for (int t = 0; t < FM_MAX_TASKS; t++) {
        fm_strbuf_append(&b, " ");
        fm_strbuf_append_double(&b, s->part[t]);
    }
    return fm_strbuf_take(&b);
}

static int sums_parse(const char *text, Sums *s) {
    memset(s, 0, sizeof *s);
    if (!text || !text[0]) return 0;
    if (strncmp(text, "sums2", 5) != 0) return -1;
    const char *p = text + 5;
    double *v[] = {&s->stays,          &s->total,          &s->task,           &s->balance,
                   &s->entropy,        &s->train_s,        &s->total_train_s,  &s->val_s,
                   &s->test_s,         &s->lr,             &s->compete_layer_steps, &s->compete_batches,
                   &s->compete_router, &s->compete_diversity, &s->compete_balance};
    for (size_t i = 0; i < sizeof v / sizeof *v + FM_MAX_TASKS; i++) {
        char *end;
        double x = strtod(p, &end);
        if (end == p) return -1;
        *(i < sizeof v / sizeof *v ? v[i] : &s->part[i - sizeof v / sizeof *v]) = x;
        p = end;
    }
    return 0;
}

static FmStatus save_checkpoint(Run *r, FmError *err) {
    if (!r->writer) { /* rank 0 writes it; the others learn how that went */
        FmStatus st = fm_dist_agree(r->dist, FM_OK, err);
        if (st == FM_OK) r->has_checkpoint = 1;
        return st;
    }
    FmTrainProgress tp = {.epochs_done = r->epochs_done,
                          .steps_done = r->steps_done,
                          .best_metric = r->best_metric,
                          .best_epoch = r->best_epoch,
                          .bad_epochs = r->bad_epochs,
                          .config_text = r->config_text,
                          .log_text = r->log.data ? r->log.data : (char *)""};
    tp.state_text = sums_text(&r->sums);
    if (!tp.state_text) return FM_FAIL(err, FM_ERR_NOMEM, NULL, "out of memory writing a checkpoint");
    FmStatus st = fm_checkpoint_save(r->path[PATH_CHECKPOINT], &r->model->params, &tp, err);
    fm_free(tp.state_text);
    st = fm_dist_agree(r->dist, st, err);
    if (st == FM_OK) r->has_checkpoint = 1;
    return st;
}

/* Keys that may differ between the start of a run and its resumption: they change how the
 * run is carried out, not what it computes (threads: up to float rounding, see train.h). */
static int resume_may_differ(const FmConfigKey *k) {
    return strcmp(k->section, "train") == 0 && (strcmp(k->key, "threads") == 0 || strcmp(k->key, "checkpoint_every") == 0);
}

FmStatus fm_train_check_same_config(const char *saved_text, const FmConfig *cfg, const char *where, FmError *err) {
    FmConfig saved;
    FmStatus st = fm_config_init(&saved, err);
    if (st != FM_OK) return st;
    FmError e;
    if (fm_config_load_string(&saved, saved_text, where, &e) != FM_OK) {
        fm_config_free(&saved);
        return FM_FAIL(err, e.code == FM_ERR_NOMEM ? FM_ERR_NOMEM : FM_ERR_FORMAT, where,
                       "unreadable configuration: %s", e.message);
    }
    int n;
    const FmConfigKey *keys = fm_config_schema(&n);
    for (int i = 0; i < n && st == FM_OK; i++) {
        if (resume_may_differ(&keys[i])) continue;
        char name[128];
        snprintf(name, sizeof name, "%s.%s", keys[i].section, keys[i].key);
        const char *a = fm_config_text(&saved, name), *b = fm_config_text(cfg, name);
        if (strcmp(a, b) != 0)
            st = FM_FAIL(err, FM_ERR_MISMATCH, where, "the run was made with %s = %s, now %s = %s", name,
                         a[0] ? a : "(empty)", name, b[0] ? b : "(empty)");
    }
    fm_config_free(&saved);
    return st;
}

static FmStatus check_same_config(Run *r, const char *saved_text, FmError *err) {
    FmStatus st = fm_train_check_same_config(saved_text, r->cfg, r->path[PATH_CHECKPOINT], err);
    if (st == FM_ERR_MISMATCH)
        fm_error_prefix(err, "cannot resume");
    if (st == FM_ERR_MISMATCH && err) {
        size_t len = strlen(err->message);
        snprintf(err->message + len, sizeof err->message - len,
                 "; resume with the configuration it started with (config.ini of the run), or start a new run");
    }
    return st;
}

/* What rank 0 sends the other ranks after reading a checkpoint. */
typedef struct {
    int has_checkpoint;
    long epochs_done, steps_done, best_epoch, bad_epochs;
    double best_metric;
    Sums sums;
} Position;

static FmStatus read_checkpoint(Run *r, FmError *err);

/* Loads the checkpoint when resuming (rank 0 reads it and sends parameters, Adam state and
 * position to the other ranks); returns FM_OK with r->has_checkpoint 0 when there is none. */
static FmStatus load_checkpoint(Run *r, FmError *err) {
    FmStatus st = r->writer ? read_checkpoint(r, err) : FM_OK;
    if ((st = fm_dist_agree(r->dist, st, err)) != FM_OK || fm_dist_size(r->dist) == 1) return st;
    Position pos = {r->has_checkpoint, r->epochs_done, r->steps_done, r->best_epoch, r->bad_epochs, r->best_metric,
                    r->sums};
    fm_dist_broadcast(r->dist, &pos, sizeof pos);
    if (!pos.has_checkpoint) return FM_OK;
    FmParams *p = &r->model->params;
    fm_dist_broadcast(r->dist, p->data, p->total * sizeof *p->data);
    fm_dist_broadcast(r->dist, p->adam_m, p->total * sizeof *p->adam_m);
    fm_dist_broadcast(r->dist, p->adam_v, p->total * sizeof *p->adam_v);
    r->has_checkpoint = 1;
    r->epochs_done = pos.epochs_done;
    r->steps_done = pos.steps_done;
    r->best_epoch = pos.best_epoch;
    r->bad_epochs = pos.bad_epochs;
    r->best_metric = pos.best_metric;
    r->sums = pos.sums;
    return FM_OK;
}

static FmStatus read_checkpoint(Run *r, FmError *err) {
    if (!r->opt->resume || !file_exists(r->path[PATH_CHECKPOINT])) return FM_OK;
    FmTrainProgress tp;
    FmStatus st = fm_checkpoint_load(r->path[PATH_CHECKPOINT], &r->model->params, &tp, err);
    if (st != FM_OK) return st;
    st = check_same_config(r, tp.config_text, err);
    if (st == FM_OK && sums_parse(tp.state_text, &r->sums) != 0)
        st = FM_FAIL(err, FM_ERR_FORMAT, r->path[PATH_CHECKPOINT], "unreadable training state");
    long pos = tp.steps_done - tp.epochs_done * r->steps_per_epoch;
    if (st == FM_OK && (tp.epochs_done < 0 || tp.epochs_done > r->epochs || pos < 0 || pos > r->steps_per_epoch))
        st = FM_FAIL(err, FM_ERR_FORMAT, r->path[PATH_CHECKPOINT], "position epoch %ld, step %ld does not fit the run",
                     tp.epochs_done, tp.steps_done);
    if (st == FM_OK) {
        r->epochs_done = tp.epochs_done;
        r->steps_done = tp.steps_done;
        r->best_metric = tp.best_metric;
        r->best_epoch = tp.best_epoch;
        r->bad_epochs = tp.bad_epochs;
        fm_strbuf_free(&r->log);
        fm_strbuf_init(&r->log);
        fm_strbuf_append(&r->log, tp.log_text ? tp.log_text : "");
        if (r->log.failed) st = FM_FAIL(err, FM_ERR_NOMEM, NULL, "out of memory");
        r->has_checkpoint = 1;
    }
    fm_train_progress_free(&tp);
    return st;
}

/* ---- training ---- */

/* Trains optimiser steps [first, steps_per_epoch) of epoch `e` (0-based). */
static FmStatus train_epoch(Run *r, int e, long first, FmError *err) {
    FmRng order = fm_rng_split(&r->root, STREAM_ORDER), fwd_base = fm_rng_split(&r->root, STREAM_FORWARD);
    FmRng order_e = fm_rng_split(&order, (uint64_t)e), fwd_e = fm_rng_split(&fwd_base, (uint64_t)e);
    fm_train_order_shuffle(&r->order, &order_e);
    FmParams *p = &r->model->params;
    const FmModelConfig *mc = &r->model->cfg;
    const int rank = fm_dist_rank(r->dist), ranks = fm_dist_size(r->dist);
    for (long s = first; s < r->steps_per_epoch; s++) {
        double t0 = now_s();
        fm_params_zero_grad(p);
        if (r->compete) {
            /* The layers that compete on this optimiser step (all its batches). */
            uint8_t mask[FM_MODEL_MAX_LAYERS];
            int n = fm_compete_schedule_draw(&r->compete_schedule, r->steps_done, mc->layers, mask);
            FmStatus st = fm_model_set_competition(r->ws, r->model, n ? mask : NULL, &r->compete_settings, err);
            if (st != FM_OK) return st;
            r->sums.compete_layer_steps += n;
        }
        long j0 = s * r->accumulation, j1 = j0 + r->accumulation;
        if (j1 > r->batches_per_epoch) j1 = r->batches_per_epoch;
        /* One process adds each micro-batch's loss into the epoch's sums; ranks add theirs
         * into the step's, which are summed over ranks below. */
        Sums step = {0}, *into = ranks > 1 ? &step : &r->sums;
        FmStatus st = FM_OK;
        for (long j = j0; j < j1 && st == FM_OK; j++) {
            if (fm_train_order_owner(&r->order, j, ranks) != rank) continue;
            const int64_t start = r->order.batch_start[j];
            const int n = r->order.batch_size[j];
            for (int k = 0; k < n; k++) r->batch_idx[k] = r->d.train[r->order.perm[start + k]];
            st = fm_train_batch_make(&r->tb, &r->d.cohort, &r->d.spec, r->d.split, r->batch_idx, n, err);
            if (st != FM_OK) break;
            FmRng rng = fm_rng_split(&fwd_e, (uint64_t)j);
            FmModelLoss loss;
            st = fm_model_forward(r->model, r->ws, &r->tb.view, 1, &rng, &loss, err);
            if (st != FM_OK) break;
            fm_model_backward(r->model, r->ws);
            into->stays += n;
            into->total += loss.total * n;
            into->task += loss.task * n;
            for (int t = 0; t < mc->n_tasks; t++) into->part[t] += loss.task_loss[t] * n;
            into->balance += loss.balance * n;
            into->entropy += loss.entropy * n;
            if (loss.competed) {
                into->compete_batches += 1;
                into->compete_router += loss.compete_router;
                into->compete_diversity += loss.compete_diversity;
                into->compete_balance += loss.compete_balance;
            }
        }
        if ((st = fm_dist_agree(r->dist, st, err)) != FM_OK) return st;
        if (ranks > 1) {
            /* The step's gradient: the ranks' sums of their micro-batch gradients, added in a
             * fixed order (src/dist.h); then the loss sums likewise. */
            fm_dist_sum_floats(r->dist, p->grad, p->total);
            enum { NV = 9 };
            double v[NV + FM_MAX_TASKS] = {step.stays,   step.total,           step.task,
                                           step.balance, step.entropy,         step.compete_batches,
                                           step.compete_router, step.compete_diversity, step.compete_balance};
            for (int t = 0; t < FM_MAX_TASKS; t++) v[NV + t] = step.part[t];
            fm_dist_sum_doubles(r->dist, v, NV + FM_MAX_TASKS);
            r->sums.stays += v[0];
            r->sums.total += v[1];
            r->sums.task += v[2];
            r->sums.balance += v[3];
            r->sums.entropy += v[4];
            r->sums.compete_batches += v[5];
            r->sums.compete_router += v[6];
            r->sums.compete_diversity += v[7];
            r->sums.compete_balance += v[8];
            for (int t = 0; t < mc->n_tasks; t++) r->sums.part[t] += v[NV + t];
        }
        /* The mean of the group's batch gradients, as if it were one larger batch. */
        float scale = 1.0f / (float)(j1 - j0);
        if (j1 - j0 > 1)
            for (size_t i = 0; i < p->total; i++) p->grad[i] *= scale;
        double norm = r->clip > 0.0 ? fm_params_clip_grad(p, r->clip) : fm_params_grad_norm(p);
        if (!isfinite(norm)) {
            FM_FAIL(err, FM_ERR_NUMERIC, NULL, "the gradient norm is not finite");
            return FM_ERR_NUMERIC;
        }
        r->sums.lr = fm_lr_at(&r->sched, r->steps_done);
        r->adam.lr = (float)r->sums.lr;
        fm_adam_step(p, &r->adam, r->steps_done + 1);
        r->steps_done++;
        r->sums.train_s += now_s() - t0;
        FmTrainEvent ev = {.kind = FM_TRAIN_EVENT_STEP,
                           .epoch = e + 1,
                           .step = r->steps_done,
                           .loss = r->sums.total / r->sums.stays,
                           .stays_per_s = r->sums.train_s > 0 ? r->sums.stays / r->sums.train_s : 0.0,
                           .lr = r->sums.lr};
        notify(r, &ev);
        /* Every rank stops at the same step when any of them received the signal. */
        const int signal_number = fm_dist_max_int(r->dist, fm_interrupt_requested());
        int interrupted = signal_number != 0;
        int periodic = r->checkpoint_every > 0 && (s + 1) % r->checkpoint_every == 0 && s + 1 < r->steps_per_epoch;
        if (interrupted || periodic) {
            st = save_checkpoint(r, err);
            if (st != FM_OK) return st;
            if (interrupted)
                return FM_FAIL(err, FM_ERR_INTERRUPTED, r->opt->out_dir,
                               "interrupted by signal %d in epoch %d after optimiser step %ld; checkpoint saved, "
                               "continue with --resume",
                               signal_number, e + 1, r->steps_done);
        }
    }
    return FM_OK;
}

/* Validation after epoch e: the epoch's record, selection, best model, log, checkpoint. */
static FmStatus end_epoch(Run *r, int e, FmEpochRecord *rec, FmError *err) {
    const FmModelConfig *mc = &r->model->cfg;
    memset(rec, 0, sizeof *rec);
    rec->epoch = e + 1;
    rec->lr = r->sums.lr;
    double n = r->sums.stays > 0 ? r->sums.stays : 1.0;
    rec->train_loss = r->sums.total / n;
    rec->train_task = r->sums.task / n;
    for (int t = 0; t < mc->n_tasks; t++) rec->train_task_loss[t] = r->sums.part[t] / n;
    rec->train_balance = r->sums.balance / n;
    rec->train_entropy = r->sums.entropy / n;
    rec->train_s = r->sums.train_s;
    rec->stays_per_s = r->sums.train_s > 0 ? r->sums.stays / r->sums.train_s : NAN;

    double t0 = now_s();
    FmEvaluateLoss vloss;
    fm_evaluate_usage_clear(&r->usage);
    FmEvaluateOptions eo = {.usage = &r->usage, .loss = &vloss};
    FmStatus st = fm_evaluate_predict_dist(r->dist, r->model, r->ws, &r->tb, &r->d.cohort, &r->d.spec, r->d.split, r->d.val,
                                           r->d.n_val, &eo, &r->val_pred, err);
    if (st == FM_OK) st = fm_evaluate_summarise(mc, &r->val_pred, rec->val, err);
    if ((st = fm_dist_agree(r->dist, st, err)) != FM_OK) return st;
    rec->val_loss = vloss.total;
    rec->compete = r->compete;
    if (r->compete) {
        double nb = r->sums.compete_batches;
        rec->compete_layer_steps = (long)r->sums.compete_layer_steps;
        rec->compete_router = nb > 0 ? r->sums.compete_router / nb : NAN;
        rec->compete_diversity = nb > 0 ? r->sums.compete_diversity / nb : NAN;
        rec->compete_balance = nb > 0 ? r->sums.compete_balance / nb : NAN;
    }
    /* Collapse diagnostics in either training mode, on the first validation batch (after the
     * usage counts above), by rank 0, whose block of validation stays starts with it. */
    fm_evaluate_experts_clear(&r->probe);
    int n_probe = (int)(r->d.n_val < r->tb.cap ? r->d.n_val : r->tb.cap);
    if (r->writer && n_probe > 0 &&
        (st = fm_train_batch_make(&r->tb, &r->d.cohort, &r->d.spec, r->d.split, r->d.val, n_probe, err)) == FM_OK &&
        (st = fm_model_forward(r->model, r->ws, &r->tb.view, 0, NULL, NULL, err)) == FM_OK)
        fm_evaluate_experts_add(&r->probe, r->model, r->ws);
    if ((st = fm_dist_agree(r->dist, st, err)) != FM_OK) return st;
    for (int l = 0; l < mc->layers; l++) {
        rec->similarity[l] = fm_evaluate_experts_similarity(&r->probe, l, -1);
        rec->agreement[l] = fm_evaluate_experts_agreement(&r->probe, l, -1);
    }
    fm_dist_broadcast(r->dist, rec->similarity, sizeof rec->similarity);
    fm_dist_broadcast(r->dist, rec->agreement, sizeof rec->agreement);
    int higher;
    rec->select = fm_evaluate_select_value(mc, rec->val, r->select, vloss.total, &higher);
    for (int l = 0; l < mc->layers; l++) {
        rec->usage_entropy[l] = fm_evaluate_usage_entropy(&r->usage, l, -1);
        rec->usage_dead[l] = fm_evaluate_usage_dead(&r->usage, l, -1);
    }
    int improved = r->best_epoch == 0 ||
                   (isfinite(rec->select) &&
                    (!isfinite(r->best_metric) || (higher ? rec->select > r->best_metric : rec->select < r->best_metric)));
    if (improved) {
        r->best_epoch = e + 1;
        r->best_metric = rec->select;
        r->bad_epochs = 0;
        r->info.best_epoch = e + 1;
        st = fm_evaluate_choose_thresholds(mc, &r->val_pred, r->info.threshold, err);
        if (st == FM_OK && r->writer)
            st = fm_train_model_save(r->path[PATH_MODEL], r->model, &r->d.cohort, r->d.split, &r->d.spec, &r->info, err);
        if ((st = fm_dist_agree(r->dist, st, err)) != FM_OK) return st;
    } else {
        r->bad_epochs++;
    }
    rec->best = improved;
    rec->val_s = now_s() - t0;
    r->sums.val_s += rec->val_s;
    fm_train_log_row(&r->log, mc, rec);
    if (r->log.failed) return FM_FAIL(err, FM_ERR_NOMEM, NULL, "out of memory for the epoch log");
    if (r->writer) st = fm_atomic_write_all(r->path[PATH_EPOCHS], r->log.data, r->log.len, err);
    if ((st = fm_dist_agree(r->dist, st, err)) != FM_OK) return st;
    /* The epoch is complete: its sums go into the run's totals and start over. */
    r->epochs_done = e + 1;
    Sums next = {.total_train_s = r->sums.total_train_s + r->sums.train_s,
                 .val_s = r->sums.val_s,
                 .lr = r->sums.lr};
    r->sums = next;
    return save_checkpoint(r, err);
}

static int finished_training(const Run *r) {
    return r->epochs_done >= r->epochs || (r->patience > 0 && r->bad_epochs >= r->patience);
}

/* ---- the test part ---- */

static FmStatus write_timing(Run *r, FmError *err) {
    cJSON *root = cJSON_CreateObject();
    if (!root) return FM_FAIL(err, FM_ERR_NOMEM, NULL, "out of memory");
    double stays = (double)r->d.n_train * (double)r->epochs_done;
    FmStatus st = fm_json_add_number(root, "train_seconds", r->sums.total_train_s, err);
    if (st == FM_OK) st = fm_json_add_number(root, "val_seconds", r->sums.val_s, err);
    if (st == FM_OK) st = fm_json_add_number(root, "test_seconds", r->sums.test_s, err);
    if (st == FM_OK) st = fm_json_add_number(root, "epochs_run", (double)r->epochs_done, err);
    if (st == FM_OK)
        st = fm_json_add_number(root, "train_stays_per_s", r->sums.total_train_s > 0 ? stays / r->sums.total_train_s : NAN,
                                err);
    if (st == FM_OK && r->dist) {
        /* This session's gradient sums on rank 0, waiting for the slowest rank included. */
        if (st == FM_OK) st = fm_json_add_number(root, "ranks", fm_dist_size(r->dist), err);
        if (st == FM_OK) st = fm_json_add_number(root, "gradient_sum_seconds", r->dist->sum_seconds, err);
        if (st == FM_OK) st = fm_json_add_number(root, "gradient_sums", (double)r->dist->sum_calls, err);
    }
    if (st == FM_OK) st = fm_json_write(root, r->path[PATH_TIMING], err);
    cJSON_Delete(root);
    return st;
}

/* train.report_part: 1 when the selected model is evaluated on the validation part. */
static int report_on_val(const FmConfig *cfg) {
    return strcmp(fm_config_string(cfg, "train.report_part"), "val") == 0;
}

/* metrics.json, predictions.csv and timing.json of the reported part (test, or validation for
 * train.report_part = val); removes the checkpoint. */

static FmStatus write_report(Run *r, double missing, uint64_t seed, double t0, FmError *err) {
    const FmConfig *cfg = r->cfg;
    const int on_val = report_on_val(cfg);
    const FmPredictions *pred = on_val ? &r->val_pred : &r->test_pred;
    FmStatus st = FM_OK;
    cJSON *root = cJSON_CreateObject(), *run = NULL, *tasks = NULL;
    if (root && (run = cJSON_AddObjectToObject(root, "run"))) tasks = cJSON_AddObjectToObject(root, "tasks");
    if (!tasks) {
        cJSON_Delete(root);
        return FM_FAIL(err, FM_ERR_NOMEM, NULL, "out of memory");
    }
    if (!(st = fm_json_add_string(run, "cohort", r->d.cohort_path, err)) &&
        !(st = fm_json_add_number(run, "split", r->d.split, err)) && !(st = fm_json_add_string(run, "part", on_val ? "val" : "test", err)) &&
        !(st = fm_json_add_number(run, "n_stays", (double)(on_val ? r->d.n_val : r->d.n_test), err)) &&
        !(st = fm_json_add_number(run, "n_train_stays", (double)r->d.n_train, err)) &&
        !(st = fm_json_add_number(run, "missing_rate", missing, err)) &&
        !(st = fm_json_add_number(run, "seed", (double)seed, err)) &&
        !(st = fm_json_add_number(run, "epochs_run", (double)r->epochs_done, err)) &&
        !(st = fm_json_add_number(run, "best_epoch", (double)r->best_epoch, err)) &&
        !(st = fm_json_add_string(run, "select_metric", fm_config_string(cfg, "train.select_metric"), err)) &&
        !(st = fm_json_add_number(run, "select_value", r->best_metric, err))) {
        FmReportOptions ro = {.bootstrap = (int)fm_config_int(cfg, "eval.bootstrap"),
                              .seed = seed,
                              .los_log_offset_days = r->d.cohort.settings.los_log_offset_days};
        st = fm_evaluate_report(tasks, &r->model->cfg, r->info.label_ptr, pred, r->info.threshold, &ro, err);
    }
    if (st == FM_OK) st = fm_evaluate_experts_report(root, &r->usage, &r->probe, err);
    if (st == FM_OK) st = fm_json_add_config(root, "config", cfg, err);
    if (st == FM_OK)
        st = fm_evaluate_write_predictions(r->path[PATH_PREDICTIONS], pred, r->info.label_ptr, 1, err);
    r->sums.test_s = now_s() - t0;
    if (st == FM_OK) st = write_timing(r, err);
    /* metrics.json last: its presence marks the run complete. */
    if (st == FM_OK) st = fm_json_write(root, r->path[PATH_METRICS], err);
    cJSON_Delete(root);
    if (st == FM_OK && r->has_checkpoint) unlink(r->path[PATH_CHECKPOINT]);
    return st;
}

static FmStatus test_and_report(Run *r, FmTrainResult *res, FmError *err) {
    FmTrainEvent ev = {.kind = FM_TRAIN_EVENT_TEST, .epoch = (int)r->epochs_done, .step = r->steps_done,
                       .best_epoch = (int)r->best_epoch};
    notify(r, &ev);
    double t0 = now_s();
    /* The best epoch's parameters and thresholds, as the model file holds them (rank 0 reads
     * it and sends them to the other ranks). */
    FmStatus st = FM_OK;
    if (r->writer) {
        FmTrainInfo saved;
        st = fm_model_file_load_params(r->path[PATH_MODEL], r->model, err);
        if (st == FM_OK) st = fm_train_model_read_info(r->path[PATH_MODEL], r->d.spec.n_labels, &saved, err);
        if (st == FM_OK) {
            memcpy(r->info.threshold, saved.threshold, sizeof saved.threshold);
            fm_train_info_free(&saved);
        }
    }
    if ((st = fm_dist_agree(r->dist, st, err)) != FM_OK) return st;
    FmParams *p = &r->model->params;
    fm_dist_broadcast(r->dist, p->data, p->total * sizeof *p->data);
    fm_dist_broadcast(r->dist, r->info.threshold, sizeof r->info.threshold);
    const FmConfig *cfg = r->cfg;
    double missing = fm_config_float(cfg, "eval.missing_rate");
    uint64_t seed = (uint64_t)fm_config_int(cfg, "train.seed");
    /* The reported part's expert diagnostics for metrics.json: counts and probe over every
     * stay of the part (the test part, or the validation part for tuning runs). */
    fm_evaluate_usage_clear(&r->usage);
    fm_evaluate_experts_clear(&r->probe);
    FmEvaluateOptions eo = {.missing_rate = missing, .seed = seed, .usage = &r->usage, .probe = &r->probe};
    const int on_val = report_on_val(cfg);
    st = fm_evaluate_predict_dist(r->dist, r->model, r->ws, &r->tb, &r->d.cohort, &r->d.spec, r->d.split,
                                  on_val ? r->d.val : r->d.test, on_val ? r->d.n_val : r->d.n_test, &eo,
                                  on_val ? &r->val_pred : &r->test_pred, err);
    if (st != FM_OK) return st;
    /* Rank 0 reports and writes; the others wait for how that went. */
    if (r->writer) st = write_report(r, missing, seed, t0, err);
    if ((st = fm_dist_agree(r->dist, st, err)) != FM_OK) return st;
    res->epochs_run = (int)r->epochs_done;
    res->best_epoch = (int)r->best_epoch;
    res->stopped_early = r->epochs_done < r->epochs;
    res->select_value = r->best_metric;
    res->train_seconds = r->sums.total_train_s;
    return FM_OK;
}

FmStatus fm_train_run(const FmTrainOptions *opt, FmTrainResult *res, FmError *err) {
    memset(res, 0, sizeof *res);
    Run r;
    memset(&r, 0, sizeof r);
    r.opt = opt;
    r.cfg = opt->cfg;
    r.dist = opt->dist;
    r.writer = fm_dist_is_writer(opt->dist);
    fm_strbuf_init(&r.log);
    FmStatus st = FM_OK;
    char metrics[FM_PATH_MAX];
    /* Rank 0 looks at the run folder; the others follow its finding. */
    int complete = r.writer && snprintf(metrics, sizeof metrics, "%s/%s", opt->out_dir, FM_TRAIN_METRICS_FILE) <
                                   (int)sizeof metrics && opt->resume && file_exists(metrics);
    complete = fm_dist_max_int(r.dist, complete);
    if (complete) {
        /* Complete already: only if it was made with this configuration. */
        char path[FM_PATH_MAX];
        snprintf(path, sizeof path, "%s/%s", opt->out_dir, FM_TRAIN_CONFIG_FILE);
        char *text = NULL;
        if ((st = fm_config_check(opt->cfg, err)) == FM_OK && r.writer &&
            (st = fm_train_folder_read(path, &text, err)) == FM_OK)
            st = fm_train_check_same_config(text, opt->cfg, path, err);
        fm_free(text);
        st = fm_dist_agree(r.dist, st, err);
        if (st == FM_OK) res->already_complete = 1;
        else if (st == FM_ERR_MISMATCH) fm_error_prefix(err, "the complete run in %s", opt->out_dir);
        return st;
    }
    if (strcmp(fm_config_string(opt->cfg, "model.kind"), "fusemoe") != 0) return fm_baseline_run(opt, res, err);
    st = setup(&r, err);
    if (st == FM_OK && r.writer) st = fm_train_folder_create(opt->out_dir, err);
    if ((st = fm_dist_agree(r.dist, st, err)) != FM_OK) goto done;
    if ((st = load_checkpoint(&r, err)) != FM_OK) goto done;
    if (!r.has_checkpoint) {
        fm_train_log_header(&r.log, &r.model->cfg, r.compete);
        if (r.log.failed) {
            st = FM_FAIL(err, FM_ERR_NOMEM, NULL, "out of memory");
            goto done;
        }
    }
    if (r.writer) st = fm_config_write(r.cfg, r.path[PATH_CONFIG], err);
    if ((st = fm_dist_agree(r.dist, st, err)) != FM_OK) goto done;
    FmTrainEvent start = {.kind = FM_TRAIN_EVENT_START,
                          .epoch = (int)r.epochs_done + 1,
                          .step = r.steps_done,
                          .n_train = r.d.n_train,
                          .n_val = r.d.n_val,
                          .n_test = r.d.n_test,
                          .n_params = fm_params_count(&r.model->params),
                          .resumed = r.has_checkpoint};
    notify(&r, &start);
    while (!finished_training(&r)) {
        int e = (int)r.epochs_done;
        long first = r.steps_done - r.epochs_done * r.steps_per_epoch;
        st = train_epoch(&r, e, first, err);
        if (st == FM_ERR_NUMERIC) {
            char last[FM_PATH_MAX + 96];
            if (r.has_checkpoint)
                snprintf(last, sizeof last, "the last good checkpoint, %s, is kept", r.path[PATH_CHECKPOINT]);
            else
                snprintf(last, sizeof last, "no checkpoint had been written yet");
            char what[512];
            snprintf(what, sizeof what, "%s", err ? err->message : "");
            st = FM_FAIL(err, FM_ERR_NUMERIC, opt->out_dir,
                         "epoch %d, optimiser step %ld: %s; training stopped (lower train.lr or check the data); %s",
                         e + 1, r.steps_done + 1, what, last);
            goto done;
        }
        if (st != FM_OK) goto done;
        FmEpochRecord rec;
        if ((st = end_epoch(&r, e, &rec, err)) != FM_OK) goto done;
        FmTrainEvent ev = {.kind = FM_TRAIN_EVENT_EPOCH,
                           .epoch = e + 1,
                           .step = r.steps_done,
                           .loss = rec.train_loss,
                           .stays_per_s = rec.stays_per_s,
                           .lr = rec.lr,
                           .record = &rec,
                           .select_name = fm_config_string(r.cfg, "train.select_metric"),
                           .best_epoch = (int)r.best_epoch,
                           .stopping = finished_training(&r) && r.epochs_done < r.epochs};
        notify(&r, &ev);
        const int signal_number = fm_dist_max_int(r.dist, fm_interrupt_requested());
        if (signal_number) {
            st = FM_FAIL(err, FM_ERR_INTERRUPTED, opt->out_dir,
                         "interrupted by signal %d after epoch %d; checkpoint saved, continue with --resume",
                         signal_number, e + 1);
            goto done;
        }
    }
    st = test_and_report(&r, res, err);
done:
    run_free(&r);
    return st;
}
