/* Ablation grids: a base study, overrides, and axes over any configuration key, expanded into
 * configurations, each to be run on every (split, seed).
 *
 * The grid file (INI, same comment and value rules as a study file, src/config.h):
 *
 *   [grid]
 *   study = synth_study.ini          ; the base study; a relative path is relative to this file
 *   seeds = 1, 2, 3                  ; train.seed of the runs (default: the study's)
 *   splits = 0, 1                    ; data.split of the runs (default: the study's)
 *   baseline = laplace               ; the configuration the others are compared with
 *                                    ; (default: the first)
 *   metrics = mortality.auroc, mortality.auprc   ; <task>.<metric> of metrics.json for the
 *                                    ; tables (default: per task AUROC and AUPRC, macro AUROC,
 *                                    ; or MAE and R^2); experts.entropy,
 *                                    ; .dead, .similarity, .agreement: the
 *                                    ; expert diagnostics (src/evaluate_experts.h)
 *   [set]                            ; overrides applied to every configuration
 *   train.epochs = 4
 *   [axes]                           ; one axis per line: values separated by |
 *   model.gate = laplace | softmax
 *   data.modalities = vitals+labs+static | vitals | labs
 *
 * Configurations are the cartesian product of the axes, the last axis varying fastest. A
 * configuration is named by its values joined with "/" ("softmax/vitals+labs"); list values
 * are written with "+" between items ("+" or "," are both accepted in the file). Keys of
 * section [eval] are evaluation-only: configurations that differ only in them share one
 * trained model per (split, seed), which is evaluated once per setting. Unless the grid sets
 * train.threads (in [set] or an axis), every run uses 1 OpenBLAS thread, since runs go in
 * parallel.
 *
 * Every problem is reported before any run starts, at its line of the grid
 * ("grid.ini:9: [axes] model.gate: \"lapace\" is not one of laplace, gaussian, softmax"), or of
 * the study file for the study's own keys; a combination the configuration rules refuse names
 * the configuration ("grid.ini:12: configuration softmax/8: [model] top_k: 8 is more than
 * model.experts (4)"). */
#ifndef FM_ABLATE_GRID_H
#define FM_ABLATE_GRID_H

#include "src/config.h"
#include "src/error.h"

#define FM_ABLATE_MAX_AXES 8
#define FM_ABLATE_MAX_CONFIGS 4096
#define FM_ABLATE_KEY_MAX 96

typedef struct {
    char key[FM_ABLATE_KEY_MAX]; /* "model.gate" */
    int line;
    int n;
    char **value; /* (n) as written in the configuration ("a, b" for lists) */
    char **label; /* (n) as written in configuration names ("a+b" for lists) */
    int eval_only;
} FmAblateAxis;

typedef struct {
    char key[FM_ABLATE_KEY_MAX];
    char *value;
    int line;
} FmAblateSet;

typedef struct {
    char *path;  /* the grid file as given */
    char *study; /* the base study's path */
    FmConfig base; /* the base study with the [set] overrides */
    int n_seeds, seeds_line;
    long *seeds;
    int n_splits, splits_line;
    long *splits;
    char *baseline;
    int n_metrics;
    char **metrics; /* "<task>.<metric>" */
    int n_sets;
    FmAblateSet *sets;
    int n_axes;
    FmAblateAxis axes[FM_ABLATE_MAX_AXES];
    int threads_set; /* the grid sets train.threads */
    /* the expansion */
    int n_configs;
    char **config_name; /* (n_configs) */
    char **train_name;  /* (n_configs): the name without the evaluation-only axes ("base" when
                           no axis trains) */
    int *choice;        /* (n_configs, n_axes): the value of each axis */
} FmAblateGrid;

/* Reads and checks the grid file at `path` and its base study, and expands the
 * configurations. Every configuration is built (fm_ablate_grid_config) and checked with
 * fm_config_check here. On failure *g is empty. */
FmStatus fm_ablate_grid_load(const char *path, FmAblateGrid *g, FmError *err);

/* Frees everything; NULL and empty grids are accepted. */
void fm_ablate_grid_free(FmAblateGrid *g);

/* The resolved configuration of configuration `config` on (split, seed): the base study, the
 * [set] overrides, the axes' values (with_eval_axes = 0: the training configuration, whose
 * evaluation keys keep the base's values), data.split, train.seed, train.threads. *cfg is
 * initialised here (fm_config_free). Errors are located as described above. */
FmStatus fm_ablate_grid_config(const FmAblateGrid *g, int config, long split, long seed, int with_eval_axes,
                               FmConfig *cfg, FmError *err);

/* Index of the configuration called `name`, or -1. */
int fm_ablate_grid_find(const FmAblateGrid *g, const char *name);

#endif
