/* Training one study run: from a resolved configuration to a run folder with the best model,
 * its test-set evaluation and the epoch log.
 *
 * What a run does, in order:
 *  1. Checks everything before any work: fm_config_check, the cohort file, the split, the
 *     modalities and tasks against the cohort (src/train_spec.h), the run folder.
 *  2. Training stays: the training part of split data.split, or a stratified, seeded
 *     train.train_fraction of it (strata: 0, 1 and unknown of the first binary label; at
 *     least one stay of every non-empty stratum).
 *  3. Epochs of train.batch_size stays in a seeded order (shuffled within train.shards shards,
 *     src/train_order.h; one shard by default); the gradients of
 *     train.accumulation consecutive batches are averaged into one optimiser step (an epoch's
 *     last step may average fewer); global norm clipping (train.clip_norm); AdamW (src/params.h)
 *     at the rate of src/lr_schedule.h (warm-up over train.warmup_fraction of all steps, then
 *     constant or cosine decay to 0). With competition.enabled, the layers that compete on an
 *     optimiser step (all its batches) come from models/compete_schedule.h, drawn by step
 *     number from train.seed.
 *  4. After each epoch: predictions on the validation part, the selection value
 *     (train.select_metric, src/evaluate_report.h), the epoch's row of epochs.csv. An epoch
 *     that improves on the best so far (strictly; the first epoch always counts) is written to
 *     model.h5 with decision thresholds chosen on those validation predictions. Early stopping
 *     after train.patience epochs without improvement (0 = never).
 *  5. The best model on the test part (with eval.missing_rate and the run's seed):
 *     predictions.csv and metrics.json; on the validation part instead when
 *     train.report_part = val (tuning runs, which never score the test part).
 *
 * Determinism. Every random number derives from train.seed through fm_rng_split streams: the
 * training subset, the order of epoch e, and the dropout and routing noise of batch j of epoch
 * e each have their own stream. The same configuration gives the same model.h5 and
 * metrics.json, byte for byte, however the run was interrupted and resumed. train.threads is
 * part of "the same configuration": OpenBLAS partitions its GEMMs differently with another
 * number of threads, which changes the rounding of some sums (measured: model files differ
 * between 1 and 2 threads; metrics agree to about 1e-8).
 *
 * Checkpoints (checkpoint.h5): parameters, Adam state, the position (epoch, optimiser step), the
 * early-stopping state, the epoch log and the running sums of a partly done epoch. Written at
 * the end of every epoch, every train.checkpoint_every optimiser steps, and when SIGINT or
 * SIGTERM arrives (src/interrupt.h; installed by the caller): then the run stops at the next
 * step boundary and returns FM_ERR_INTERRUPTED. With `resume` the run continues from
 * checkpoint.h5 (it must have been started with the same configuration, except train.threads
 * and train.checkpoint_every) and ends with the same files as an uninterrupted run (with the
 * same train.threads); without a
 * checkpoint it starts afresh. A run whose metrics.json exists is complete: `resume` then does
 * nothing, after checking that its config.ini is this configuration. The checkpoint is
 * removed when the run completes.
 *
 * A non-finite training loss or gradient stops the run (FM_ERR_NUMERIC, naming the epoch and
 * step) without writing anything more: the last checkpoint stays as it was.
 *
 * Run folder (every file written atomically):
 *   config.ini       the resolved configuration
 *   epochs.csv       the epoch log (src/train_log.h), rewritten after each epoch
 *   model.h5         the best epoch's model (src/train_model_file.h)
 *   predictions.csv  the test part's predictions (src/evaluate_csv.h)
 *   metrics.json     the test part's metrics (src/evaluate_report.h) with "run" (split, part,
 *                    stays, best epoch, selection), "experts" (the test stays' expert
 *                    diagnostics, src/evaluate_experts.h) and "config"
 *   timing.json      seconds spent training, validating and testing, and training stays/s
 *                    (kept apart from metrics.json, which is reproducible to the byte)
 *   checkpoint.h5    while the run is incomplete */
#ifndef FM_TRAIN_H
#define FM_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "src/config.h"
#include "src/dist.h"
#include "src/error.h"
#include "src/train_log.h"

/* Names of the files in a run folder. */
#define FM_TRAIN_CONFIG_FILE "config.ini"
#define FM_TRAIN_EPOCHS_FILE "epochs.csv"
#define FM_TRAIN_MODEL_FILE "model.h5"
#define FM_TRAIN_PREDICTIONS_FILE "predictions.csv"
#define FM_TRAIN_METRICS_FILE "metrics.json"
#define FM_TRAIN_TIMING_FILE "timing.json"
#define FM_TRAIN_CHECKPOINT_FILE "checkpoint.h5"

typedef enum {
    FM_TRAIN_EVENT_START, /* set-up done, about to train (or to evaluate) */
    FM_TRAIN_EVENT_STEP,  /* an optimiser step */
    FM_TRAIN_EVENT_EPOCH, /* an epoch and its validation */
    FM_TRAIN_EVENT_TEST   /* the test evaluation is about to start */
} FmTrainEventKind;

/* What the observer is told. Fields not named for an event kind are 0. */
typedef struct {
    FmTrainEventKind kind;
    int epoch, epochs;      /* current epoch (1-based) and train.epochs */
    long step, total_steps; /* optimiser steps done and in all */
    int64_t n_train, n_val, n_test; /* START */
    size_t n_params;                /* START */
    int resumed;                    /* START: 1 when continuing from a checkpoint */
    double loss;                    /* STEP, EPOCH: mean training loss of the epoch so far */
    double stays_per_s;             /* STEP, EPOCH: training throughput of the epoch so far */
    double lr;                      /* STEP, EPOCH */
    const FmEpochRecord *record;    /* EPOCH */
    const char *select_name;        /* EPOCH: the selection metric ("auprc", "loss", ...) */
    int best_epoch;                 /* EPOCH, TEST */
    int stopping;                   /* EPOCH: early stopping ends training here */
} FmTrainEvent;

typedef void (*FmTrainObserver)(void *ctx, const FmTrainEvent *ev);

/* Data-parallel training (src/dist.h; README "Running on a cluster"). With `dist` of N > 1
 * ranks, every rank calls fm_train_run with the same options; the run is the one-process run
 * with the work shared:
 *  - each optimiser step's micro-batches (train.accumulation batches of train.batch_size
 *    stays, in the order of src/train_order.h) are dealt to the ranks; a rank runs forward and
 *    backward of its own exactly as one process would (same stays, same random streams); the
 *    gradient arenas are summed over ranks in a fixed order (fm_dist_sum_floats) and every
 *    rank takes the same clipping and Adam step, so the ranks' parameters stay identical bit
 *    for bit. train.accumulation must be at least N (FM_ERR_CONFIG).
 *  - a rank loads only the rows of the stays it computes: its shards when N divides
 *    train.shards (else every training stay), and its blocks of the validation and test stays.
 *  - validation and test predictions are computed in blocks of whole batches per rank and
 *    gathered in stay order (src/evaluate_dist.h).
 *  - rank 0 alone reads and writes the run folder, checkpoints included (on resume it reads
 *    the checkpoint and sends the state to the others). A failure or an interruption on any
 *    rank stops every rank at the same step (fm_dist_agree), with the same error.
 * Against one process the model differs only by the rounding of the gradient sum (the ranks'
 * micro-batch gradients are summed apart, then added); N ranks repeat their own results
 * exactly. timing.json gains "ranks", "gradient_sum_seconds" and "gradient_sums". */
typedef struct {
    const FmConfig *cfg;     /* resolved: files and overrides applied */
    const char *out_dir;     /* the run folder (created when missing) */
    int resume;              /* continue from out_dir/checkpoint.h5 if there is one */
    FmTrainObserver observer; /* may be NULL */
    void *observer_ctx;
    FmDist *dist;            /* NULL: one process */
} FmTrainOptions;

typedef struct {
    int already_complete; /* resume found metrics.json: nothing was done */
    int baseline;         /* 1: a baseline was fitted (model.kind, src/baseline.h); no epochs */
    int epochs_run;
    int best_epoch;
    int stopped_early;
    double select_value;  /* the best epoch's selection value */
    double train_seconds; /* training time over all sessions of the run (checkpointed) */
} FmTrainResult;

/* Compares configuration text `saved_text` (a run's config.ini or a checkpoint's) with `cfg`
 * over every key that changes what a run computes (all but train.threads and
 * train.checkpoint_every). FM_OK when they agree; FM_ERR_MISMATCH at `where` naming the first
 * key that differs ("the run was made with model.gate = laplace, now model.gate = softmax");
 * FM_ERR_FORMAT when the text does not parse. */
FmStatus fm_train_check_same_config(const char *saved_text, const FmConfig *cfg, const char *where, FmError *err);

/* Runs the study (see above). Errors: FM_ERR_CONFIG (located as src/config.h does), FM_ERR_IO
 * and FM_ERR_FORMAT (files), FM_ERR_ARG (a run folder that holds a run, without `resume`),
 * FM_ERR_MISMATCH (a checkpoint of another configuration), FM_ERR_NUMERIC, FM_ERR_INTERRUPTED
 * (a resumable checkpoint was saved), FM_ERR_NOMEM. */
FmStatus fm_train_run(const FmTrainOptions *opt, FmTrainResult *res, FmError *err);

#endif
