/* Reading and preparing PhysioNet 2012 sets A+B (8,000 records, 3.5 million lines), against
 * pandas reading the same record files in the same run; also saving and loading the cohort file
 * and gathering training batches. Run by `make bench` (scripts/run-bench.sh). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "preprocessing/prepare.h"
#include "src/alloc.h"
#include "src/blas_kernel.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void die(const char *what, const FmError *err) {
    fprintf(stderr, "bench_prepare: %s: ", what);
    fm_error_print(err, stderr);
    exit(1);
}

int main(int argc, char **argv) {
    fm_blas_select_kernel(argv);
    const char *shared = getenv("FUSEMOE_SHARED");
    if (!shared || !*shared) shared = "../shared";
    char a[1024], b[1024], oa[1024], ob[1024];
    snprintf(a, sizeof a, "%s/data/physionet2012/set-a", shared);
    snprintf(b, sizeof b, "%s/data/physionet2012/set-b", shared);
    snprintf(oa, sizeof oa, "%s/data/physionet2012/Outcomes-a.txt", shared);
    snprintf(ob, sizeof ob, "%s/data/physionet2012/Outcomes-b.txt", shared);
    FmPrepareOptions o = fm_prepare_defaults();
    const char *dirs[] = {a, b}, *outs[] = {oa, ob};
    o.p12_dirs = dirs;
    o.n_p12_dirs = 2;
    o.outcome_files = outs;
    o.n_outcome_files = 2;

    enum { REPEATS = 3 };
    double t[REPEATS];
    FmCohort c;
    FmVarMap map;
    FmPrepareReport rep;
    FmError err;
    for (int r = 0; r < REPEATS; r++) {
        double t0 = now();
        if (fm_prepare_run(&o, &c, &map, &rep, &err) != FM_OK) die("prepare", &err);
        t[r] = now() - t0;
        if (r < REPEATS - 1) {
            fm_cohort_free(&c);
            fm_var_map_free(&map);
            fm_report_free(&rep);
        }
    }
    qsort(t, REPEATS, sizeof *t, cmp_double);
    printf("bench_prepare: P12 sets A+B: %lld lines, %lld records -> %lld stays\n", (long long)rep.lines_read,
           (long long)rep.records_read, (long long)c.N);
    printf("  read + prepare (C, 1 thread)      best %.3f s  median %.3f s  (%d runs; %.1f M lines/s)\n",
           t[0], t[REPEATS / 2], REPEATS, (double)rep.lines_read / t[0] / 1e6);

    char path[256];
    snprintf(path, sizeof path, "/tmp/bench_prepare_%ld.h5", (long)getpid());
    double t0 = now();
    if (fm_cohort_save(&c, path, &err) != FM_OK) die("save", &err);
    double t_save = now() - t0;
    FmCohort d;
    t0 = now();
    if (fm_cohort_load(path, &d, &err) != FM_OK) die("load", &err);
    double t_load = now() - t0;
    FILE *f = fopen(path, "rb");
    long bytes = 0;
    if (f) {
        fseek(f, 0, SEEK_END);
        bytes = ftell(f);
        fclose(f);
    }
    unlink(path);
    printf("  save cohort file                  %.3f s  (%.1f MB)\n", t_save, (double)bytes / 1e6);
    printf("  load cohort file (validated)      %.3f s\n", t_load);

    /* Every training stay of split 0 in batches of 32. */
    int64_t *idx, n;
    if (fm_cohort_split_stays(&d, 0, FM_PART_TRAIN, &idx, &n, &err) != FM_OK) die("split", &err);
    FmBatch batch;
    if (fm_cohort_batch_alloc(&d, 32, &batch, &err) != FM_OK) die("batch", &err);
    t0 = now();
    for (int64_t k = 0; k < n; k += 32) {
        int B = (int)(n - k < 32 ? n - k : 32);
        if (fm_cohort_make_batch(&d, 0, idx + k, B, &batch, &err) != FM_OK) die("batch", &err);
    }
    double t_batch = now() - t0;
    printf("  gather one epoch of batches of 32 %.3f s  (%lld stays, %.0f stays/s)\n", t_batch, (long long)n,
           (double)n / t_batch);
    fm_cohort_batch_free(&batch);
    fm_cohort_free(&d);

    /* pandas on the same files, in the same run. */
    char cmd[3000];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 tests/bench/bench_prepare_pandas.py '%s' '%s'", a, b);
    FILE *p = popen(cmd, "r");
    double t_pd = -1;
    long long rows = 0;
    if (p) {
        char line[256];
        while (fgets(line, sizeof line, p))
            if (sscanf(line, "pandas_seconds %lf rows %lld", &t_pd, &rows) == 2) break;
        pclose(p);
    }
    if (t_pd > 0) {
        printf("  pandas read_csv per record + concat  %.3f s  (%lld rows; reading only, no cleaning)\n",
               t_pd, rows);
        printf("  ratio pandas / C read+prepare     %.1fx\n", t_pd / t[0]);
    } else {
        printf("  pandas: not measured (needs /usr/bin/python3 with pandas)\n");
    }
    fm_free(idx);
    fm_cohort_free(&c);
    fm_var_map_free(&map);
    fm_report_free(&rep);
    return 0;
}
