/* fusemoe eval and fusemoe predict: a trained model on a cohort file (src/evaluate_run.h). */
#include <stdio.h>
#include <string.h>

#include "preprocessing/cohort.h"
#include "src/cli/cmd_common.h"
#include "src/cli/commands.h"
#include "src/evaluate_run.h"

static void eval_usage(FILE *out, int with_labels) {
    const char *cmd = with_labels ? "eval" : "predict";
    fprintf(out,
            "usage: fusemoe %s --model RUNDIR/model.h5 --cohort C.h5 [--split K] [--part test|val|train|all]\n"
            "                     %s--out DIR [--batch-size N] [--threads N]\n"
            "\n",
            cmd, with_labels ? "[--missing-rate P] [--seed S] [--bootstrap B] " : "[--missing-rate P] [--seed S] ");
    if (with_labels)
        fprintf(out,
                "Evaluates a trained model: DIR/predictions.csv (stay_id,task,y_true,y_score) and\n"
                "DIR/metrics.json (per task AUROC, AUPRC, F1, Brier, ECE / MAE, RMSE, R2 / macro and micro\n"
                "AUROC, macro F1, with stratified bootstrap 95%% intervals).\n");
    else
        fprintf(out, "Scores stays with a trained model: DIR/predictions.csv (stay_id,task,y_score); no labels needed.\n");
    fprintf(out,
            "\n"
            "The cohort is standardised with the model's statistics (from its training split), so a\n"
            "cohort the model never saw (another data set or hospital) can be scored: use --part all.\n"
            "\n"
            "options:\n"
            "  --model F          model file written by fusemoe train\n"
            "  --cohort F         cohort file written by fusemoe prepare\n"
            "  --split K          split whose part is used (default: the split the model was trained on)\n"
            "  --part P           test (default), val, train, or all stays of the cohort\n"
            "  --missing-rate P   drop each present modality of a stay with probability P, keeping at\n"
            "                     least one (default 0)\n"
            "  --seed S           seed of the dropped modalities%s (default 1)\n"
            "%s"
            "  --batch-size N     stays per forward (default: the model's training batch size, which\n"
            "                     repeats the training run's test predictions to the bit)\n"
            "  --threads N        OpenBLAS threads (default 1)\n"
            "  --out DIR          output folder (created when missing)\n"
            "\n"
            "example:\n"
            "  fusemoe %s --model runs/laplace/model.h5 --cohort p12.h5 --part test --out runs/laplace/eval\n",
            with_labels ? " and of the bootstrap" : "",
            with_labels ? "  --bootstrap B      bootstrap replicates of the intervals (default 1000; 0 = none)\n" : "",
            cmd);
}

static int run(int argc, char **argv, int with_labels) {
    const char *cmd = with_labels ? "eval" : "predict";
    FmEvaluateRunOptions o = fm_evaluate_run_defaults();
    o.with_labels = with_labels;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            eval_usage(stdout, with_labels);
            return 0;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "fusemoe %s: %s: %s\n", cmd, a, a[0] == '-' ? "missing value" : "unexpected argument");
            eval_usage(stderr, with_labels);
            return 2;
        }
        const char *v = argv[++i];
        long l;
        double d;
        if (strcmp(a, "--model") == 0) {
            o.model_path = v;
        } else if (strcmp(a, "--cohort") == 0) {
            o.cohort_path = v;
        } else if (strcmp(a, "--out") == 0) {
            o.out_dir = v;
        } else if (strcmp(a, "--split") == 0) {
            if (!fm_cli_parse_long(cmd, a, v, 0, 9999, &l)) return 2;
            o.split = (int)l;
        } else if (strcmp(a, "--part") == 0) {
            if (strcmp(v, "train") == 0) o.part = FM_PART_TRAIN;
            else if (strcmp(v, "val") == 0) o.part = FM_PART_VAL;
            else if (strcmp(v, "test") == 0) o.part = FM_PART_TEST;
            else if (strcmp(v, "all") == 0) o.part = FM_EVAL_PART_ALL;
            else {
                fprintf(stderr, "fusemoe %s: --part: expected train, val, test or all, got \"%s\"\n", cmd, v);
                return 2;
            }
        } else if (strcmp(a, "--missing-rate") == 0) {
            if (!fm_cli_parse_double(cmd, a, v, 0.0, 1.0, &d)) return 2;
            o.missing_rate = d;
        } else if (strcmp(a, "--seed") == 0) {
            if (!fm_cli_parse_long(cmd, a, v, 0, 2147483647L, &l)) return 2;
            o.seed = (uint64_t)l;
        } else if (strcmp(a, "--bootstrap") == 0 && with_labels) {
            if (!fm_cli_parse_long(cmd, a, v, 0, 100000, &l)) return 2;
            o.bootstrap = (int)l;
        } else if (strcmp(a, "--batch-size") == 0) {
            if (!fm_cli_parse_long(cmd, a, v, 1, 65536, &l)) return 2;
            o.batch_size = (int)l;
        } else if (strcmp(a, "--threads") == 0) {
            if (!fm_cli_parse_long(cmd, a, v, 1, 256, &l)) return 2;
            o.threads = (int)l;
        } else {
            fprintf(stderr, "fusemoe %s: %s: unknown option\n", cmd, a);
            eval_usage(stderr, with_labels);
            return 2;
        }
    }
    if (!o.model_path || !o.cohort_path || !o.out_dir) {
        fprintf(stderr, "fusemoe %s: --model, --cohort and --out are required\n", cmd);
        eval_usage(stderr, with_labels);
        return 2;
    }
    FmEvaluateRunResult res;
    FmError err;
    FmStatus st = fm_evaluate_run(&o, &res, &err);
    if (st != FM_OK) {
        fm_cli_report(cmd, &err);
        return fm_cli_exit_status(st);
    }
    static const char *const PARTS[] = {"train", "val", "test"};
    char what[64];
    if (res.split < 0)
        snprintf(what, sizeof what, "all stays");
    else
        snprintf(what, sizeof what, "the %s part of split %d", PARTS[o.part], res.split);
    printf("fusemoe %s: %lld stays (%s)%s\n", cmd, (long long)res.n_stays, what,
           o.missing_rate > 0 ? ", with modalities dropped at random" : "");
    if (with_labels) {
        char path[4200];
        snprintf(path, sizeof path, "%s/metrics.json", o.out_dir);
        fm_cli_print_metrics(stdout, path);
        printf("wrote %s/{predictions.csv,metrics.json}\n", o.out_dir);
    } else {
        printf("wrote %s/predictions.csv\n", o.out_dir);
    }
    return 0;
}

int fm_cmd_eval(int argc, char **argv) { return run(argc, argv, 1); }

int fm_cmd_predict(int argc, char **argv) { return run(argc, argv, 0); }
