/* fusemoe train: one study run, from a configuration to a run folder. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "src/cli/cli_mpi.h"
#include "src/cli/cmd_common.h"
#include "src/cli/commands.h"
#include "src/cli/progress.h"
#include "src/interrupt.h"
#include "src/train.h"

static void train_usage(FILE *out) {
    fprintf(out,
            "usage: fusemoe train --config STUDY.ini [--set section.key=value ...] [--cohort C.h5]\n"
            "                     --out RUNDIR [--resume] [--quiet]\n"
            "\n"
            "Trains the study's model on the training part of split [data] split, selects the best\n"
            "epoch on the validation part, and evaluates it on the test part.\n"
            "\n"
            "options:\n"
            "  --config F        study configuration (INI; keys in README, \"Study configuration\")\n"
            "  --set S.K=V       override one key (repeatable; applied after the file, in order)\n"
            "  --cohort F        the cohort file (same as --set data.cohort=F)\n"
            "  --out DIR         run folder (created when missing)\n"
            "  --resume          continue the run in DIR from its checkpoint (or start it when there is\n"
            "                    none); a complete run (DIR/metrics.json) made with the same\n"
            "                    configuration is left as it is\n"
            "  --quiet           no progress output\n"
            "\n"
            "writes DIR/config.ini, epochs.csv, model.h5 (best epoch), predictions.csv and metrics.json\n"
            "(test part), timing.json, and checkpoint.h5 while the run is incomplete.\n"
            "SIGINT/SIGTERM save a checkpoint and exit with status %d; --resume continues.\n"
            "Under mpirun (MPI builds) the ranks share each optimiser step's micro-batches; rank 0\n"
            "writes DIR (README, \"Running on a cluster\").\n"
            "\n"
            "example:\n"
            "  fusemoe train --config configs/synth_study.ini --set model.gate=softmax --out runs/softmax\n",
            FM_EXIT_INTERRUPTED);
}

typedef struct {
    FmProgress bar;
    int quiet;
    long start_step;
} View;

static void observe(void *ctx, const FmTrainEvent *ev) {
    View *v = ctx;
    if (v->quiet) return;
    switch (ev->kind) {
    case FM_TRAIN_EVENT_START:
        fprintf(stderr,
                "train: %lld training, %lld validation, %lld test stays; %zu parameters; %d epochs of %ld "
                "optimiser steps%s\n",
                (long long)ev->n_train, (long long)ev->n_val, (long long)ev->n_test, ev->n_params, ev->epochs,
                ev->total_steps / (ev->epochs > 0 ? ev->epochs : 1),
                ev->resumed ? "; resuming from the checkpoint" : "");
        if (fm_cli_dist()) fprintf(stderr, "train: data-parallel on %d ranks\n", fm_dist_size(fm_cli_dist()));
        v->start_step = ev->step;
        fm_progress_begin(&v->bar, stderr, ev->total_steps - ev->step);
        break;
    case FM_TRAIN_EVENT_STEP:
        fm_progress_update(&v->bar, ev->step - v->start_step, ev->epoch, ev->epochs, ev->loss, ev->stays_per_s, 0);
        break;
    case FM_TRAIN_EVENT_EPOCH: {
        fm_progress_update(&v->bar, ev->step - v->start_step, ev->epoch, ev->epochs, ev->loss, ev->stays_per_s, 1);
        if (v->bar.tty) fputc('\n', stderr);
        const FmEpochRecord *r = ev->record;
        fprintf(stderr, "epoch %d/%d: loss %.4f  val loss %.4f  val %s %.4f%s  lr %.3g  %.0f stays/s  %.1f s\n",
                ev->epoch, ev->epochs, r->train_loss, r->val_loss, ev->select_name, r->select, r->best ? " (best)" : "",
                r->lr, r->stays_per_s, r->train_s + r->val_s);
        if (ev->stopping)
            fprintf(stderr, "early stopping: no improvement since epoch %d\n", ev->best_epoch);
        break;
    }
    case FM_TRAIN_EVENT_TEST:
        fm_progress_end(&v->bar);
        fprintf(stderr, "testing the best model (epoch %d)\n", ev->best_epoch);
        break;
    }
}

int fm_cmd_train(int argc, char **argv) {
    const char *config = NULL, *out = NULL;
    int resume = 0, quiet = 0;
    FmConfig cfg;
    FmError err;
    if (fm_config_init(&cfg, &err) != FM_OK) {
        fm_cli_report("train", &err);
        return 1;
    }
    /* Options first (overrides are applied after the file, in order). */
    int n_sets = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            train_usage(stdout);
            fm_config_free(&cfg);
            return 0;
        }
        if (strcmp(a, "--resume") == 0) {
            resume = 1;
            continue;
        }
        if (strcmp(a, "--quiet") == 0) {
            quiet = 1;
            continue;
        }
        if (i + 1 >= argc || (strcmp(a, "--config") && strcmp(a, "--set") && strcmp(a, "--cohort") && strcmp(a, "--out"))) {
            fprintf(stderr, "fusemoe train: %s: %s\n", a,
                    i + 1 >= argc && a[0] == '-' ? "missing value" : "unknown option");
            train_usage(stderr);
            fm_config_free(&cfg);
            return 2;
        }
        const char *v = argv[++i];
        if (strcmp(a, "--config") == 0) config = v;
        else if (strcmp(a, "--out") == 0) out = v;
        else n_sets++;
    }
    if (!config || !out) {
        fprintf(stderr, "fusemoe train: --config and --out are required\n");
        train_usage(stderr);
        fm_config_free(&cfg);
        return 2;
    }
    FmStatus st = fm_config_load(&cfg, config, &err);
    for (int i = 1; i < argc && st == FM_OK && n_sets; i++) {
        if (strcmp(argv[i], "--set") == 0) {
            st = fm_config_apply_set(&cfg, argv[++i], &err);
        } else if (strcmp(argv[i], "--cohort") == 0) {
            char buf[FM_CONFIG_MAX_LINE + 16];
            snprintf(buf, sizeof buf, "data.cohort=%s", argv[++i]);
            st = fm_config_apply_set(&cfg, buf, &err);
            if (st != FM_OK) snprintf(err.where, sizeof err.where, "--cohort");
        } else if (strcmp(argv[i], "--config") == 0 || strcmp(argv[i], "--out") == 0) {
            i++;
        }
    }
    if (st != FM_OK) {
        fm_cli_report("train", &err);
        fm_config_free(&cfg);
        return 1;
    }
    fm_interrupt_install();
    /* Ranks other than 0 compute silently: rank 0 tells the progress, the results and the
     * error every rank agreed on. */
    const int rank0 = fm_cli_is_rank0();
    View view = {.quiet = quiet || !rank0};
    FmTrainOptions opt = {.cfg = &cfg, .out_dir = out, .resume = resume, .observer = observe, .observer_ctx = &view,
                          .dist = fm_cli_dist()};
    FmTrainResult res;
    st = fm_train_run(&opt, &res, &err);
    char kind[32], part[32];
    snprintf(kind, sizeof kind, "%s", fm_config_string(&cfg, "model.kind"));
    snprintf(part, sizeof part, "%s part of the split",
             strcmp(fm_config_string(&cfg, "train.report_part"), "val") == 0 ? "validation" : "test");
    fm_config_free(&cfg);
    if (st != FM_OK) {
        if (!view.quiet && view.bar.out) fm_progress_end(&view.bar);
        if (rank0) fm_cli_report("train", &err);
        return fm_cli_exit_status(st);
    }
    if (!rank0) return 0;
    char metrics[4200];
    snprintf(metrics, sizeof metrics, "%s/%s", out, FM_TRAIN_METRICS_FILE);
    if (res.already_complete) {
        printf("fusemoe train: %s is complete already (%s exists); nothing to do\n", out, FM_TRAIN_METRICS_FILE);
        return 0;
    }
    if (res.baseline) {
        printf("fusemoe train: fitted the %s baseline in %.1f s\n%s:\n", kind, res.train_seconds, part);
        fm_cli_print_metrics(stdout, metrics);
        printf("wrote %s/{baseline.json,metrics.json,predictions.csv,config.ini,timing.json}\n", out);
        return 0;
    }
    printf("fusemoe train: %d epoch%s%s, best epoch %d (validation %.4f), %.1f s of training\n", res.epochs_run,
           res.epochs_run == 1 ? "" : "s", res.stopped_early ? " (early stopping)" : "", res.best_epoch,
           res.select_value, res.train_seconds);
    printf("%s, best model:\n", part);
    fm_cli_print_metrics(stdout, metrics);
    printf("wrote %s/{model.h5,metrics.json,predictions.csv,epochs.csv,config.ini,timing.json}\n", out);
    return 0;
}
