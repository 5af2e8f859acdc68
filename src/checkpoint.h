/* Training checkpoints: everything a run needs to continue exactly where it stopped.
 *
 * One HDF5 file, written atomically: groups /params, /adam_m, /adam_v (one dataset per tensor,
 * src/params_h5.h) and attributes for the training position (epochs and optimiser steps done,
 * early-stopping state), the resolved configuration the run started with (a resume under a
 * different configuration is refused) and the per-epoch log so far. Random streams in training
 * are derived from (seed, epoch, step), so no generator state needs saving. */
#ifndef FM_CHECKPOINT_H
#define FM_CHECKPOINT_H

#include "src/error.h"
#include "src/params.h"

#define FM_CHECKPOINT_VERSION 1

typedef struct {
    long epochs_done;   /* completed epochs */
    long steps_done;    /* optimiser steps taken */
    double best_metric; /* best validation selection metric so far (NaN: none yet) */
    long best_epoch;    /* epoch (1-based) of best_metric, 0 if none */
    long bad_epochs;    /* epochs since the last improvement (early stopping) */
    char *config_text;  /* the resolved configuration (owned; fm_free) */
    char *log_text;     /* the per-epoch log CSV so far (owned; fm_free) */
    char *state_text;   /* the training loop's own state inside an epoch (running sums of a
                           partly done epoch), as text; NULL or "" when none (owned; fm_free).
                           Optional in the file: checkpoints without it read as NULL. */
} FmTrainProgress;

/* Writes parameters, Adam state (p must have its optimiser arenas) and progress to `path`
 * atomically. */
FmStatus fm_checkpoint_save(const char *path, const FmParams *p, const FmTrainProgress *tp,
                            FmError *err);

/* Reads a checkpoint into `p` (declared and allocated with optimiser arenas, same
 * configuration) and `tp` (its strings allocated; release with fm_train_progress_free). Every
 * tensor name and shape is checked. */
FmStatus fm_checkpoint_load(const char *path, FmParams *p, FmTrainProgress *tp, FmError *err);

/* Frees the strings of `tp`; NULL is accepted. */
void fm_train_progress_free(FmTrainProgress *tp);

#endif
