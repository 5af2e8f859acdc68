/* fusemoe inspect: a model file's configuration, parameter counts and expert utilisation. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "models/model_file.h"
#include "preprocessing/cohort.h"
#include "preprocessing/modality.h"
#include "src/alloc.h"
#include "src/cli/cmd_common.h"
#include "src/cli/commands.h"
#include "src/evaluate_experts.h"
#include "src/evaluate_run.h"
#include "src/evaluate_usage.h"
#include "src/inspect.h"
#include "src/plot.h"
#include "src/train_model_file.h"

static void inspect_usage(FILE *out) {
    fprintf(out,
            "usage: fusemoe inspect --model M.h5 [--cohort C.h5 [--split K] [--part test|val|train|all]\n"
            "                       [--plot FILE.png|FILE.svg]]\n"
            "\n"
            "Prints the model's configuration, its tasks and label columns, and its parameter counts\n"
            "per part. With a cohort, runs the model over the stays of the part and prints, for every\n"
            "fusion layer, the share of each modality's tokens that each expert receives, the\n"
            "normalised entropy of those shares (1 = all experts used evenly, 0 = one expert) and the\n"
            "dead experts (no token), the mean pairwise cosine similarity of all the experts' outputs\n"
            "on each token (near 1: the experts have collapsed onto one function) and the share of the\n"
            "router's top k that CompeteSMoE's competition would also choose; --plot draws the shares\n"
            "as a heatmap (rows: layer and modality).\n"
            "\n"
            "options:\n"
            "  --model F      model file written by fusemoe train\n"
            "  --cohort F     cohort file for the utilisation (standardised with the model's statistics)\n"
            "  --split K      split of the part (default: the model's training split)\n"
            "  --part P       test (default), val, train or all\n"
            "  --plot F       heatmap of the expert shares (.png or .svg)\n");
}

static void print_config(const FmModel *m, const FmTrainInfo *info, const char *path) {
    const FmModelConfig *c = &m->cfg;
    printf("%s: trained on split %lld with seed %lld, best epoch %lld\n", path, (long long)info->split,
           (long long)info->seed, (long long)info->best_epoch);
    printf("model: width %d, %d reference times, %d heads, time embedding %d, %d fusion layers, %d experts "
           "(top %d, hidden %d), %s gate, %s router%s, dropout %g, %s pooling, head hidden %d\n",
           c->D, c->Q, c->H, c->DT, c->layers, c->E, c->K, c->hidden, fm_model_gate_name(c->gate),
           fm_model_router_name(c->router), c->noisy ? ", noisy top-k" : "", (double)c->dropout,
           fm_model_pooling_name(c->pooling), c->head_hidden);
    printf("modalities:");
    for (int i = 0; i < c->M; i++)
        printf("%s %s (%s, %d)", i ? "," : "", c->mod[i].name, fm_modality_kind_name(c->mod[i].kind),
               c->mod[i].C);
    printf("\ntasks:\n");
    for (int t = 0; t < c->n_tasks; t++) {
        const FmTaskConfig *task = &c->task[t];
        printf("  %-16s %-10s weight %g, positive weight %g, columns", task->name,
               fm_model_task_kind_name(task->kind), (double)task->weight, (double)task->pos_weight);
        for (int j = task->label0; j < task->label0 + task->n; j++) {
            printf(" %s", info->label_name[j]);
            if (isfinite(info->threshold[j])) printf(" (threshold %.4g)", info->threshold[j]);
        }
        printf("\n");
    }
}

static int print_parts(const FmModel *m) {
    FmParamPart *parts;
    int n;
    FmError err;
    if (fm_inspect_parts(m, &parts, &n, &err) != FM_OK) {
        fm_cli_report("inspect", &err);
        return 1;
    }
    size_t total = 0;
    printf("parameters:\n  %-28s %8s %12s\n", "part", "tensors", "parameters");
    for (int i = 0; i < n; i++) {
        printf("  %-28s %8d %12zu\n", parts[i].name, parts[i].tensors, parts[i].count);
        total += parts[i].count;
    }
    printf("  %-28s %8d %12zu\n", "total", m->params.n_tensors, total);
    fm_free(parts);
    return 0;
}

static void print_usage_table(const FmModel *m, const FmExpertUsage *u, const FmExpertProbe *p) {
    const FmModelConfig *c = &m->cfg;
    for (int l = 0; l < u->layers; l++) {
        printf("layer %d: share of each modality's tokens per expert (%%)\n  %-16s", l, "modality");
        for (int e = 0; e < u->E; e++)
            printf(" %5d", e);
        printf("  entropy  dead  similarity  agreement\n");
        for (int k = 0; k <= u->M; k++) {
            int mm = k < u->M ? k : -1;
            printf("  %-16s", mm >= 0 ? c->mod[mm].name : "(all)");
            for (int e = 0; e < u->E; e++) {
                double s = fm_evaluate_usage_share(u, l, mm, e);
                if (isnan(s))
                    printf("     -");
                else
                    printf(" %5.1f", 100.0 * s);
            }
            printf("  %7.3f  %4d  %10.3f  %9.3f\n", fm_evaluate_usage_entropy(u, l, mm),
                   fm_evaluate_usage_dead(u, l, mm), fm_evaluate_experts_similarity(p, l, mm),
                   fm_evaluate_experts_agreement(p, l, mm));
        }
    }
}

static int plot_usage(const FmModel *m, const FmExpertUsage *u, const char *path) {
    const int rows = u->layers * u->M, cols = u->E;
    double *v = fm_malloc_array((size_t)rows * cols, sizeof *v);
    char(*names)[64] = fm_malloc_array((size_t)rows, sizeof *names);
    const char **row_labels = fm_malloc_array((size_t)rows, sizeof *row_labels);
    int rc = 1;
    if (v && names && row_labels) {
        for (int l = 0; l < u->layers; l++)
            for (int mm = 0; mm < u->M; mm++) {
                int r = l * u->M + mm;
                snprintf(names[r], sizeof names[r], "layer %d %s", l, m->cfg.mod[mm].name);
                row_labels[r] = names[r];
                for (int e = 0; e < cols; e++)
                    v[(size_t)r * cols + e] = fm_evaluate_usage_share(u, l, mm, e);
            }
        FmHeatmap map = {.values = v,
                         .rows = rows,
                         .cols = cols,
                         .row_labels = row_labels,
                         .title = "Expert utilisation",
                         .x_label = "expert",
                         .y_label = "layer, modality",
                         .value_label = "share of the modality's tokens",
                         .vmin = 0.0,
                         .vmax = NAN,
                         .annotate = 1};
        FmError err;
        if (fm_plot_heatmap(path, &map, &err) != FM_OK)
            fm_cli_report("inspect", &err);
        else {
            printf("wrote %s\n", path);
            rc = 0;
        }
    }
    fm_free(v);
    fm_free(names);
    fm_free(row_labels);
    return rc;
}

int fm_cmd_inspect(int argc, char **argv) {
    FmEvaluateRunOptions o = fm_evaluate_run_defaults();
    o.with_labels = 0;
    o.bootstrap = 0;
    const char *plot = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            inspect_usage(stdout);
            return 0;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "fusemoe inspect: %s: %s\n", a,
                    a[0] == '-' ? "missing value" : "unexpected argument");
            inspect_usage(stderr);
            return 2;
        }
        const char *v = argv[++i];
        long l;
        if (strcmp(a, "--model") == 0)
            o.model_path = v;
        else if (strcmp(a, "--cohort") == 0)
            o.cohort_path = v;
        else if (strcmp(a, "--plot") == 0)
            plot = v;
        else if (strcmp(a, "--split") == 0) {
            if (!fm_cli_parse_long("inspect", a, v, 0, 9999, &l)) return 2;
            o.split = (int)l;
        } else if (strcmp(a, "--part") == 0) {
            if (strcmp(v, "train") == 0)
                o.part = FM_PART_TRAIN;
            else if (strcmp(v, "val") == 0)
                o.part = FM_PART_VAL;
            else if (strcmp(v, "test") == 0)
                o.part = FM_PART_TEST;
            else if (strcmp(v, "all") == 0)
                o.part = FM_EVAL_PART_ALL;
            else {
                fprintf(stderr, "fusemoe inspect: --part: expected train, val, test or all, got \"%s\"\n", v);
                return 2;
            }
        } else {
            fprintf(stderr, "fusemoe inspect: %s: unknown option\n", a);
            inspect_usage(stderr);
            return 2;
        }
    }
    if (!o.model_path || (plot && !o.cohort_path)) {
        fprintf(stderr, "fusemoe inspect: %s\n",
                !o.model_path ? "--model is required" : "--plot needs --cohort");
        inspect_usage(stderr);
        return 2;
    }
    FmModel *model;
    FmNorm norm;
    FmTrainInfo info;
    FmError err;
    if (fm_train_model_load(o.model_path, &model, &norm, &info, &err) != FM_OK) {
        fm_cli_report("inspect", &err);
        return 1;
    }
    print_config(model, &info, o.model_path);
    int rc = print_parts(model);
    if (rc == 0 && o.cohort_path) {
        FmExpertUsage usage;
        FmExpertProbe probe;
        FmEvaluateRunResult res;
        o.usage = &usage;
        o.probe = &probe;
        if (fm_evaluate_run(&o, &res, &err) != FM_OK) {
            fm_cli_report("inspect", &err);
            rc = 1;
        } else {
            static const char *const PARTS[] = {"train", "val", "test"};
            printf("expert utilisation on %s: %lld stays", o.cohort_path, (long long)res.n_stays);
            if (res.split >= 0) printf(" (%s part of split %d)", PARTS[o.part], res.split);
            printf("\n");
            print_usage_table(model, &usage, &probe);
            if (plot) rc = plot_usage(model, &usage, plot);
            fm_evaluate_usage_free(&usage);
            fm_evaluate_experts_free(&probe);
        }
    }
    fm_norm_free(&norm);
    fm_train_info_free(&info);
    fm_model_free(model);
    return rc;
}
