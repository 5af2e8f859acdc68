/* fusemoe prepare: raw clinical data to a cohort file and its report. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "preprocessing/prepare.h"
#include "src/alloc.h"
#include "src/atomic_file.h"
#include "src/cli/commands.h"

static void prepare_usage(FILE *out) {
    fprintf(
        out,
        "usage: fusemoe prepare (--p12 DIR[,DIR...] --outcomes F[,F...] | --long-csv F --labels F[,F...])\n"
        "                       --out COHORT.h5 [options]\n"
        "\n"
        "Reads raw clinical data, cleans it, and writes one cohort file with its splits and\n"
        "standardisation statistics, plus a report (COHORT.report.txt and stdout).\n"
        "\n"
        "inputs:\n"
        "  --p12 DIR[,DIR...]         PhysioNet 2012 record folders (set-a,set-b)\n"
        "  --outcomes F[,F...]        PhysioNet 2012 outcome files (Outcomes-a.txt,...)\n"
        "  --long-csv F               long CSV of observations (stay_id,time_h,variable,value)\n"
        "  --labels F[,F...]          labels CSV (stay_id,mortality,los_days[,more 0/1 columns])\n"
        "  --mapping F                variable-to-modality mapping (default data/p12_modalities.csv)\n"
        "  --notes F.h5               note embeddings (/stay_id, /time_h, /embedding)\n"
        "  --image-features F.h5      image feature vectors (/stay_id, /time_h, /features)\n"
        "  --images INDEX.csv         image index (stay_id,time_h,path) of PNG files\n"
        "  --image-size S             images are resized to S x S pixels (default 64)\n"
        "column names (long CSV, labels, split file):\n"
        "  --id-col NAME              stay id column (default stay_id)\n"
        "  --time-col NAME            time column, hours since admission (default time_h)\n"
        "  --var-col NAME             variable column (default variable)\n"
        "  --value-col NAME           value column (default value)\n"
        "  --mortality-col NAME       labels: in-hospital death 0/1 (default mortality)\n"
        "  --los-col NAME             labels: length of stay in days (default los_days)\n"
        "  --phenotype-prefix P       labels: columns named P* form the phenotype task (default phe_)\n"
        "  --ignore-label-cols A,B    labels: further columns that are not labels\n"
        "  --sentinel V               long CSV: value V means not recorded (P12 always uses -1)\n"
        "rules:\n"
        "  --window-hours H           observation window, first H hours (default 48; H itself kept)\n"
        "  --los-threshold D          binary label LOS > D days (default 7)\n"
        "splits:\n"
        "  --splits repeated:N[:TR,VA,TE]   N seeded stratified splits (default repeated:5:0.8,0.1,0.1)\n"
        "  --splits kfold:K                 K stratified folds (test fold k, validation fold k+1)\n"
        "  --split-file F             splits from a file: stay_id,<split>[,<split>...] with\n"
        "                             train/val/test/none\n"
        "  --seed N                   seed of the generated splits (default 1)\n"
        "output:\n"
        "  --out F                    cohort file (HDF5), written atomically\n"
        "  --report F                 report file (default: F without .h5, plus .report.txt)\n"
        "  --quiet                    do not print the report to stdout\n"
        "\n"
        "examples:\n"
        "  fusemoe prepare --p12 ../shared/data/physionet2012/set-a,../shared/data/physionet2012/set-b \\\n"
        "      --outcomes "
        "../shared/data/physionet2012/Outcomes-a.txt,../shared/data/physionet2012/Outcomes-b.txt \\\n"
        "      --out p12.h5\n"
        "  fusemoe prepare --long-csv obs.csv --labels labels.csv --mapping my_map.csv --splits kfold:5 "
        "--out c.h5\n");
}

/* Splits a comma-separated argument into at most 64 strings (pointing into a copy). */
typedef struct {
    char *buf;
    const char *item[64];
    int n;
} List;

static int split_list(List *l, const char *arg) {
    l->buf = fm_strdup(arg);
    l->n = 0;
    if (!l->buf) return -1;
    for (char *p = l->buf;;) {
        char *comma = strchr(p, ',');
        if (comma) *comma = '\0';
        if (*p) {
            if (l->n == 64) return -1; /* more than 64 items */
            l->item[l->n++] = p;
        }
        if (!comma) break;
        p = comma + 1;
    }
    return l->n > 0 ? 0 : -1;
}

static int parse_double(const char *s, double *out) {
    char *end;
    *out = strtod(s, &end);
    return end != s && *end == '\0' ? 0 : -1;
}

int fm_cmd_prepare(int argc, char **argv) {
    FmPrepareOptions o = fm_prepare_defaults();
    List p12 = {0}, outcomes = {0}, labels = {0}, ignore = {0};
    const char *out = NULL, *report_path = NULL, *splits_text = NULL, *split_file = NULL;
    int quiet = 0, rc = 2;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            prepare_usage(stdout);
            rc = 0;
            goto done;
        }
        if (strcmp(a, "--quiet") == 0) {
            quiet = 1;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "fusemoe prepare: %s: %s\n", a,
                    a[0] == '-' ? "missing value" : "unexpected argument");
            goto usage;
        }
        const char *v = argv[++i];
        double d;
        if (strcmp(a, "--p12") == 0) {
            if (split_list(&p12, v) != 0) goto bad_value;
        } else if (strcmp(a, "--outcomes") == 0) {
            if (split_list(&outcomes, v) != 0) goto bad_value;
        } else if (strcmp(a, "--labels") == 0) {
            if (split_list(&labels, v) != 0) goto bad_value;
        } else if (strcmp(a, "--ignore-label-cols") == 0) {
            if (split_list(&ignore, v) != 0) goto bad_value;
        } else if (strcmp(a, "--long-csv") == 0) {
            o.long_csv = v;
        } else if (strcmp(a, "--mapping") == 0) {
            o.mapping = v;
        } else if (strcmp(a, "--notes") == 0) {
            o.notes_h5 = v;
        } else if (strcmp(a, "--image-features") == 0) {
            o.image_features_h5 = v;
        } else if (strcmp(a, "--images") == 0) {
            o.image_index = v;
        } else if (strcmp(a, "--image-size") == 0) {
            if (parse_double(v, &d) != 0 || d != (int)d || d < 1 || d > 1024) goto bad_value;
            o.image_size = (int)d;
        } else if (strcmp(a, "--id-col") == 0) {
            o.long_opt.id_col = o.label_opt.id_col = o.splits.id_col = v;
        } else if (strcmp(a, "--time-col") == 0) {
            o.long_opt.time_col = v;
        } else if (strcmp(a, "--var-col") == 0) {
            o.long_opt.var_col = v;
        } else if (strcmp(a, "--value-col") == 0) {
            o.long_opt.value_col = v;
        } else if (strcmp(a, "--mortality-col") == 0) {
            o.label_opt.mortality_col = v;
        } else if (strcmp(a, "--los-col") == 0) {
            o.label_opt.los_col = v;
        } else if (strcmp(a, "--phenotype-prefix") == 0) {
            o.label_opt.phenotype_prefix = v;
        } else if (strcmp(a, "--sentinel") == 0) {
            if (parse_double(v, &o.sentinel) != 0) goto bad_value;
            o.has_sentinel = 1;
        } else if (strcmp(a, "--window-hours") == 0) {
            if (parse_double(v, &o.window_h) != 0 || !(o.window_h > 0)) goto bad_value;
        } else if (strcmp(a, "--los-threshold") == 0) {
            if (parse_double(v, &o.los_threshold_days) != 0 || !(o.los_threshold_days >= 0)) goto bad_value;
        } else if (strcmp(a, "--splits") == 0) {
            splits_text = v;
        } else if (strcmp(a, "--split-file") == 0) {
            split_file = v;
        } else if (strcmp(a, "--seed") == 0) {
            char *end;
            unsigned long long s = strtoull(v, &end, 10);
            if (end == v || *end || v[0] == '-') goto bad_value;
            o.seed = (uint64_t)s;
        } else if (strcmp(a, "--out") == 0) {
            out = v;
        } else if (strcmp(a, "--report") == 0) {
            report_path = v;
        } else {
            fprintf(stderr, "fusemoe prepare: unknown option '%s'\n", a);
            goto usage;
        }
        continue;
    bad_value:
        fprintf(stderr, "fusemoe prepare: %s: invalid value '%s'\n", a, v);
        goto usage;
    }
    if (!out) {
        fprintf(stderr, "fusemoe prepare: --out is required\n");
        goto usage;
    }
    if (splits_text && split_file) {
        fprintf(stderr, "fusemoe prepare: give --splits or --split-file, not both\n");
        goto usage;
    }
    FmError err;
    fm_error_clear(&err);
    if (splits_text) {
        const char *id_col = o.splits.id_col;
        if (fm_splits_parse(splits_text, &o.splits, &err) != FM_OK) {
            fprintf(stderr, "fusemoe prepare: %s\n", err.message);
            goto usage;
        }
        o.splits.id_col = id_col;
    }
    if (split_file) {
        o.splits.kind = FM_SPLITS_FILE;
        o.splits.path = split_file;
    }
    o.p12_dirs = p12.item;
    o.n_p12_dirs = p12.n;
    o.outcome_files = outcomes.item;
    o.n_outcome_files = outcomes.n;
    o.label_files = labels.item;
    o.n_label_files = labels.n;
    o.label_opt.ignore = ignore.item;
    o.label_opt.n_ignore = ignore.n;

    char report_buf[FM_PATH_MAX];
    if (!report_path) {
        size_t len = strlen(out);
        if (len > 3 && strcmp(out + len - 3, ".h5") == 0) len -= 3;
        snprintf(report_buf, sizeof report_buf, "%.*s.report.txt", (int)len, out);
        report_path = report_buf;
    }

    FmCohort c;
    FmVarMap map;
    FmPrepareReport rep;
    FmStatus st = fm_prepare_run(&o, &c, &map, &rep, &err);
    if (st == FM_ERR_ARG) {
        fprintf(stderr, "fusemoe prepare: %s\n", err.message);
        goto usage;
    }
    if (st == FM_OK) st = fm_cohort_save(&c, out, &err);
    if (st == FM_OK) {
        FmAtomicFile af;
        st = fm_atomic_open(&af, report_path, &err);
        if (st == FM_OK) {
            fprintf(af.f, "fusemoe prepare report for %s\n\n", out);
            fm_report_write_text(&rep, &map, &c, af.f);
            st = fm_atomic_close(&af, &err);
        }
    }
    if (st == FM_OK) {
        if (!quiet) fm_report_write_text(&rep, &map, &c, stdout);
        fprintf(stderr, "fusemoe prepare: wrote %s (%lld stays) and %s\n", out, (long long)c.N, report_path);
        fm_cohort_free(&c);
        fm_var_map_free(&map);
        fm_report_free(&rep);
        rc = 0;
    } else {
        fprintf(stderr, "fusemoe prepare: ");
        fm_error_print(&err, stderr);
        fm_cohort_free(&c);
        fm_var_map_free(&map);
        fm_report_free(&rep);
        rc = 1;
    }
    goto done;
usage:
    fprintf(stderr, "(fusemoe prepare --help lists the options)\n");
    rc = 2;
done:
    fm_free(p12.buf);
    fm_free(outcomes.buf);
    fm_free(labels.buf);
    fm_free(ignore.buf);
    return rc;
}
