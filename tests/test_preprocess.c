/* Preprocessing rules end to end: windows, sorting, duplicates, sentinels, ranges, descriptors,
 * dropped stays, labels, events, splits, the report's counts, the full P12 sets A+B against the
 * data README, and the `fusemoe prepare` command (exit codes, messages, no partial output). */
#include <dirent.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "preprocessing/cohort_build.h"
#include "preprocessing/image_features_h5.h"
#include "preprocessing/notes_h5.h"
#include "preprocessing/png_image.h"
#include "preprocessing/prepare.h"
#include "preprocessing/splits.h"
#include "src/alloc.h"
#include "src/blas_kernel.h"
#include "tests/support/testutil.h"

static void write_text(const char *dir, const char *name, const char *text, char *path, size_t cap) {
    char buf[1024];
    if (!path) {
        path = buf;
        cap = sizeof buf;
    }
    snprintf(path, cap, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

/* Value and mask of channel `ch` in row `row` of stay i of modality m. */
static float val(const FmCohort *c, int m, int64_t i, int row, int ch) {
    const FmCohortModality *md = &c->mod[m];
    ck_assert_int_lt(row, md->count[i]);
    return md->value[(md->offset[i] + row) * md->C + ch];
}
static int msk(const FmCohort *c, int m, int64_t i, int row, int ch) {
    const FmCohortModality *md = &c->mod[m];
    return md->mask[(md->offset[i] + row) * md->C + ch];
}
static float tim(const FmCohort *c, int m, int64_t i, int row) {
    const FmCohortModality *md = &c->mod[m];
    return md->time[md->offset[i] + row];
}
static int chan(const FmCohort *c, int m, const char *name) {
    for (int k = 0; k < c->mod[m].C; k++)
        if (strcmp(c->mod[m].channel[k], name) == 0) return k;
    ck_abort_msg("no channel %s", name);
    return -1;
}
static int entry(const FmVarMap *map, const char *name, const char *mod) {
    for (int e = 0; e < map->n_entries; e++)
        if (strcmp(map->entries[e].name, name) == 0 &&
            strcmp(map->mods[map->entries[e].modality].name, mod) == 0)
            return e;
    ck_abort_msg("no entry %s/%s", name, mod);
    return -1;
}
static int64_t obs(const FmPrepareReport *rep, int e, FmObsOutcome o) {
    return rep->obs[e * FM_OBS_N_OUTCOMES + o];
}
static int64_t obs_read(const FmPrepareReport *rep, int e) {
    int64_t s = 0;
    for (int o = 0; o < FM_OBS_N_OUTCOMES; o++)
        s += obs(rep, e, (FmObsOutcome)o);
    return s;
}
static float lab(const FmCohort *c, int64_t i, const char *name) {
    int l = fm_cohort_find_label(c, name);
    ck_assert_int_ge(l, 0);
    return c->label_mask[i * c->n_labels + l] ? c->label[i * c->n_labels + l] : NAN;
}

#define SMALL "tests/fixtures/p12_small"

static FmStatus run_small(FmCohort *c, FmVarMap *map, FmPrepareReport *rep, FmError *err) {
    FmPrepareOptions o = fm_prepare_defaults();
    const char *d[] = {SMALL "/set-x"}, *f[] = {SMALL "/Outcomes-x.txt"};
    o.p12_dirs = d;
    o.n_p12_dirs = 1;
    o.outcome_files = f;
    o.n_outcome_files = 1;
    return fm_prepare_run(&o, c, map, rep, err);
}

/* Expected values worked out by hand from tests/fixtures/p12_small (see its README). */
START_TEST(test_p12_rules_on_fixture) {
    FmCohort c;
    FmVarMap map;
    FmPrepareReport rep;
    FmError err;
    ck_assert_int_eq(run_small(&c, &map, &rep, &err), FM_OK);
    ck_assert_int_eq(c.N, 2);
    ck_assert_int_eq(c.stay_id[0], 100001);
    ck_assert_int_eq(c.stay_id[1], 100002);
    int V = fm_cohort_find_modality(&c, "vitals"), L = fm_cohort_find_modality(&c, "labs"),
        S = fm_cohort_find_modality(&c, "static");
    ck_assert(V >= 0 && L >= 0 && S >= 0);
    int hr = chan(&c, V, "HR"), temp = chan(&c, V, "Temp"), wv = chan(&c, V, "Weight");
    /* 100001 vitals: sorted by time; 01:00 HR 80 and 90 merged to 85; 48:00 kept, 48:30 not;
     * Weight -1 and Temp -17.8 dropped. */
    ck_assert_int_eq(c.mod[V].count[0], 4);
    const float want_t[] = {7.0f / 60.0f, 0.5f, 1.0f, 48.0f};
    const float want_hr[] = {73, 75, 85, 60};
    for (int r = 0; r < 4; r++) {
        ck_assert_float_eq_tol(tim(&c, V, 0, r), want_t[r], 1e-6);
        ck_assert(msk(&c, V, 0, r, hr));
        ck_assert_float_eq(val(&c, V, 0, r, hr), want_hr[r]);
        ck_assert(!msk(&c, V, 0, r, wv));
    }
    ck_assert(msk(&c, V, 0, 0, temp));
    ck_assert_float_eq(val(&c, V, 0, 0, temp), 35.1f);
    for (int r = 1; r < 4; r++)
        ck_assert(!msk(&c, V, 0, r, temp));
    int observed = 0;
    for (int k = 0; k < c.mod[V].C; k++)
        observed += msk(&c, V, 0, 2, k);
    ck_assert_int_eq(observed, 1); /* unobserved entries have mask 0 and value 0 */
    ck_assert_float_eq(val(&c, V, 0, 2, temp), 0.0f);
    /* 100001 labs and static. */
    ck_assert_int_eq(c.mod[L].count[0], 1);
    ck_assert_float_eq(tim(&c, L, 0, 0), 2.0f);
    /* Glucose is log1p-transformed by the P12 mapping */
    ck_assert_float_eq_tol(val(&c, L, 0, 0, chan(&c, L, "log1p(Glucose)")), (float)log1p(120.0), 1e-6);
    const float want_static0[] = {54, 0, 170.2f, 4, 80};
    for (int k = 0; k < 5; k++) {
        ck_assert(msk(&c, S, 0, 0, k));
        ck_assert_float_eq(val(&c, S, 0, 0, k), want_static0[k]);
    }
    /* 100002: interleaved descriptors; the second 00:00 Weight is an observation; Height -1. */
    ck_assert_int_eq(c.mod[V].count[1], 1);
    ck_assert_float_eq(tim(&c, V, 1, 0), 0.0f);
    ck_assert_float_eq(val(&c, V, 1, 0, wv), 90);
    ck_assert_int_eq(c.mod[L].count[1], 2);
    int na = chan(&c, L, "Na"), k = chan(&c, L, "K");
    ck_assert_float_eq(val(&c, L, 1, 0, na), 140);
    ck_assert(!msk(&c, L, 1, 0, k));
    ck_assert_float_eq(tim(&c, L, 1, 1), 5.25f);
    ck_assert_float_eq(val(&c, L, 1, 1, na), 138);
    ck_assert_float_eq(val(&c, L, 1, 1, k), 4.1f);
    int height = chan(&c, S, "Height"), ws = chan(&c, S, "Weight");
    ck_assert(!msk(&c, S, 1, 0, height));
    ck_assert_float_eq(val(&c, S, 1, 0, ws), 91.5f);
    ck_assert_float_eq(val(&c, S, 1, 0, chan(&c, S, "Age")), 70);
    for (int m = 0; m < 3; m++)
        ck_assert(c.mod[m].present[0] && c.mod[m].present[1]);
    /* Labels: LOS 5 and 12 days. */
    ck_assert_float_eq(lab(&c, 0, "mortality"), 0);
    ck_assert_float_eq(lab(&c, 1, "mortality"), 1);
    ck_assert_float_eq_tol(lab(&c, 0, "los_log_days"), logf(6.0f), 1e-6);
    ck_assert_float_eq_tol(lab(&c, 1, "los_log_days"), logf(13.0f), 1e-6);
    ck_assert_float_eq(lab(&c, 0, "los_gt_7d"), 0);
    ck_assert_float_eq(lab(&c, 1, "los_gt_7d"), 1);
    /* Admission scores from the outcome file. */
    ck_assert_ptr_nonnull(c.saps_i);
    ck_assert_float_eq(c.saps_i[0], 10);
    ck_assert_float_eq(c.saps_i[1], 20);
    ck_assert_float_eq(c.sofa[0], 3);
    ck_assert_float_eq(c.sofa[1], 8);
    /* The report. */
    ck_assert_int_eq(rep.lines_read, 42); /* 17 + 10 + 6 + 9 lines after the headers */
    ck_assert_int_eq(rep.records_read, 4);
    ck_assert_int_eq(rep.outcome_rows, 5);
    ck_assert_int_eq(rep.outcome_deaths, 1);
    ck_assert_int_eq(rep.outcomes_without_stay, 1);
    ck_assert_int_eq(rep.stays_no_time_series, 1);
    ck_assert_int_eq(rep.stays_no_valid_obs, 1);
    ck_assert_int_eq(rep.stays_kept, 2);
    int e_hr = entry(&map, "HR", "vitals");
    ck_assert_int_eq(obs(&rep, e_hr, FM_OBS_KEPT), 4);
    ck_assert_int_eq(obs(&rep, e_hr, FM_OBS_DUPLICATE), 1);
    ck_assert_int_eq(obs(&rep, e_hr, FM_OBS_AFTER_WINDOW), 2);
    ck_assert_int_eq(obs(&rep, e_hr, FM_OBS_BELOW_RANGE), 1);
    ck_assert_int_eq(obs_read(&rep, e_hr), 8);
    ck_assert_int_eq(obs(&rep, entry(&map, "Temp", "vitals"), FM_OBS_BELOW_RANGE), 1);
    ck_assert_int_eq(obs(&rep, entry(&map, "Weight", "vitals"), FM_OBS_SENTINEL), 1);
    ck_assert_int_eq(obs(&rep, entry(&map, "Weight", "vitals"), FM_OBS_KEPT), 1);
    ck_assert_int_eq(obs(&rep, entry(&map, "pH", "labs"), FM_OBS_ABOVE_RANGE), 1);
    ck_assert_int_eq(obs(&rep, entry(&map, "Na", "labs"), FM_OBS_KEPT), 2);
    int e_h = entry(&map, "Height", "static");
    ck_assert_int_eq(obs(&rep, e_h, FM_OBS_KEPT), 1);
    ck_assert_int_eq(obs(&rep, e_h, FM_OBS_SENTINEL), 2);
    ck_assert_int_eq(obs(&rep, e_h, FM_OBS_STAY_DROPPED), 1);
    ck_assert_int_eq(obs(&rep, entry(&map, "Age", "static"), FM_OBS_STAY_DROPPED), 2);
    ck_assert_int_eq(rep.stays_with_var[e_hr], 1);
    ck_assert_int_eq(rep.stays_with_var[e_h], 1);
    ck_assert_int_eq(rep.obs_unmapped, 1);
    ck_assert_int_eq(rep.n_unmapped, 1);
    ck_assert_str_eq(rep.unmapped[0].name, "Foo");
    /* Every line is accounted for: mapped outcomes + unmapped + RecordID lines. */
    int64_t total = 0;
    for (int e = 0; e < map.n_entries; e++)
        total += obs_read(&rep, e);
    ck_assert_int_eq(total + rep.obs_unmapped + rep.records_read, rep.lines_read);
    fm_cohort_free(&c);
    fm_var_map_free(&map);
    fm_report_free(&rep);
}
END_TEST

START_TEST(test_window_option) {
    FmPrepareOptions o = fm_prepare_defaults();
    const char *d[] = {SMALL "/set-x"}, *f[] = {SMALL "/Outcomes-x.txt"};
    o.p12_dirs = d;
    o.n_p12_dirs = 1;
    o.outcome_files = f;
    o.n_outcome_files = 1;
    o.window_h = 1.0; /* 01:00 kept, 01:30 and later dropped */
    o.los_threshold_days = 4.5;
    FmCohort c;
    FmVarMap map;
    FmPrepareReport rep;
    FmError err;
    ck_assert_int_eq(fm_prepare_run(&o, &c, &map, &rep, &err), FM_OK);
    int V = fm_cohort_find_modality(&c, "vitals");
    ck_assert_int_eq(c.mod[V].count[0], 3);
    ck_assert_float_eq(tim(&c, V, 0, 2), 1.0f);
    /* 48:00, 48:30, and 100004's 03:00 and 50:00 (time is checked before the range) */
    ck_assert_int_eq(obs(&rep, entry(&map, "HR", "vitals"), FM_OBS_AFTER_WINDOW), 4);
    ck_assert_int_eq(c.mod[fm_cohort_find_modality(&c, "labs")].count[0], 0); /* Glucose at 02:00 */
    ck_assert(!c.mod[fm_cohort_find_modality(&c, "labs")].present[0]);
    ck_assert_int_ge(fm_cohort_find_label(&c, "los_gt_4.5d"), 0);
    ck_assert_float_eq(lab(&c, 0, "los_gt_4.5d"), 1);
    ck_assert_double_eq(c.settings.window_h, 1.0);
    ck_assert_double_eq(c.settings.los_threshold_days, 4.5);
    fm_cohort_free(&c);
    fm_var_map_free(&map);
    fm_report_free(&rep);
}
END_TEST

/* A long CSV in no particular order, with extra columns, static-only and twin variables,
 * phenotype labels; values worked out by hand. */
/* A log1p variable: range checked in its own units, value stored as log(1 + x) (duplicates
 * averaged after the transform), channel named log1p(<variable>). */
START_TEST(test_log1p_transform) {
    char dir[512], ob[1024], lb[1024], mp[1024];
    fm_test_tmpdir(dir, sizeof dir);
    write_text(dir, "obs.csv",
               "stay_id,time_h,variable,value\n1,1.0,ALP,99\n1,2.0,ALP,6000\n1,3.0,ALP,0\n1,3.0,ALP,3\n"
               "1,4.0,HR,80\n",
               ob, sizeof ob);
    write_text(dir, "labels.csv", "stay_id,mortality,los_days\n1,0,3\n", lb, sizeof lb);
    write_text(dir, "map.csv", "variable,modality,min,max,transform\nHR,vitals,10,300,\nALP,labs,0,5000,log1p\n", mp,
               sizeof mp);
    FmPrepareOptions o = fm_prepare_defaults();
    o.long_csv = ob;
    const char *lf[] = {lb};
    o.label_files = lf;
    o.n_label_files = 1;
    o.mapping = mp;
    FmCohort c;
    FmVarMap map;
    FmPrepareReport rep;
    FmError err;
    ck_assert_int_eq(fm_prepare_run(&o, &c, &map, &rep, &err), FM_OK);
    int L = fm_cohort_find_modality(&c, "labs");
    ck_assert_str_eq(c.mod[L].channel[0], "log1p(ALP)");
    ck_assert_str_eq(c.mod[fm_cohort_find_modality(&c, "vitals")].channel[0], "HR");
    ck_assert_double_eq(c.mod[L].range_max[0], 5000); /* ranges stay in the variable's units */
    ck_assert_int_eq(c.mod[L].count[0], 2);           /* 6000 is above the range */
    ck_assert_float_eq_tol(val(&c, L, 0, 0, 0), (float)log1p(99.0), 1e-6);
    /* 0 and 3 at the same time: mean of log(1) and log(4) */
    ck_assert_float_eq_tol(val(&c, L, 0, 1, 0), (float)(0.5 * log1p(3.0)), 1e-6);
    ck_assert_int_eq(obs(&rep, entry(&map, "ALP", "labs"), FM_OBS_ABOVE_RANGE), 1);
    fm_cohort_free(&c);
    fm_var_map_free(&map);
    fm_report_free(&rep);
    fm_test_rmtree(dir);
}
END_TEST

START_TEST(test_long_csv_rules) {
    char dir[512], ob[1024], lb[1024], mp[1024];
    fm_test_tmpdir(dir, sizeof dir);
    write_text(dir, "obs.csv",
               "variable,value,note,time_h,stay_id\n"
               "HR,100,x,3.0,2\n"
               "HR,80,,2.0,1\n"
               "HR,70,,0.5,1\n"
               "HR,72,,0.5,1\n"
               "Age,65,,1.0,1\n"
               "Age,,,0.2,1\n"
               "Age,66,,5.0,1\n"
               "Weight,70,,1.0,2\n"
               "HR,90,,60,2\n"
               "HR,90,,-1,2\n"
               "Foo,1,,1.0,1\n"
               "Age,50,,1.0,3\n"
               "HR,NaN,,2.0,2\n"
               "HR,-1,,3.0,1\n",
               ob, sizeof ob);
    write_text(dir, "labels.csv",
               "stay_id,mortality,los_days,phe_a,phe_b,flag\n1,0,0.5,1,0,\n2,1,10,0,1,1\n3,0,2,,,\n4,,,,,\n",
               lb, sizeof lb);
    write_text(dir, "map.csv",
               "variable,modality,min,max\nHR,vitals,10,300\nWeight,vitals,20,300\nAge,static,0,120\nWeight,"
               "static,20,300\n",
               mp, sizeof mp);
    FmPrepareOptions o = fm_prepare_defaults();
    o.long_csv = ob;
    const char *lf[] = {lb};
    o.label_files = lf;
    o.n_label_files = 1;
    o.mapping = mp;
    o.has_sentinel = 1;
    o.sentinel = -1;
    FmCohort c;
    FmVarMap map;
    FmPrepareReport rep;
    FmError err;
    ck_assert_int_eq(fm_prepare_run(&o, &c, &map, &rep, &err), FM_OK);
    ck_assert_int_eq(c.N, 2);
    ck_assert_int_eq(c.stay_id[0], 1);
    ck_assert_int_eq(c.stay_id[1], 2);
    int V = 0, S = 1;
    ck_assert_str_eq(c.mod[S].name, "static");
    ck_assert_int_eq(c.mod[V].count[0], 2);
    ck_assert_float_eq(tim(&c, V, 0, 0), 0.5f);
    ck_assert_float_eq(val(&c, V, 0, 0, 0), 71); /* mean of 70 and 72 */
    ck_assert_float_eq(val(&c, V, 0, 1, 0), 80);
    ck_assert_int_eq(c.mod[V].count[1], 2);
    ck_assert_float_eq(tim(&c, V, 1, 0), 1.0f);
    ck_assert(!msk(&c, V, 1, 0, 0) && msk(&c, V, 1, 0, 1));
    ck_assert_float_eq(val(&c, V, 1, 0, 1), 70);
    ck_assert_float_eq(val(&c, V, 1, 1, 0), 100);
    /* static: Age of stay 1 is its first valid value (65 at 1 h; 66 later is extra); Weight of stay
     * 2 comes from its series observation. */
    ck_assert(msk(&c, S, 0, 0, 0) && !msk(&c, S, 0, 0, 1));
    ck_assert_float_eq(val(&c, S, 0, 0, 0), 65);
    ck_assert(!msk(&c, S, 1, 0, 0) && msk(&c, S, 1, 0, 1));
    ck_assert_float_eq(val(&c, S, 1, 0, 1), 70);
    int hr = entry(&map, "HR", "vitals"), age = entry(&map, "Age", "static");
    ck_assert_int_eq(obs(&rep, hr, FM_OBS_KEPT), 3);
    ck_assert_int_eq(obs(&rep, hr, FM_OBS_DUPLICATE), 1);
    ck_assert_int_eq(obs(&rep, hr, FM_OBS_MISSING), 1);
    ck_assert_int_eq(obs(&rep, hr, FM_OBS_SENTINEL), 1);
    ck_assert_int_eq(obs(&rep, hr, FM_OBS_AFTER_WINDOW), 1);
    ck_assert_int_eq(obs(&rep, hr, FM_OBS_BEFORE_WINDOW), 1);
    ck_assert_int_eq(obs(&rep, age, FM_OBS_KEPT), 1);
    ck_assert_int_eq(obs(&rep, age, FM_OBS_MISSING), 1);
    ck_assert_int_eq(obs(&rep, age, FM_OBS_EXTRA_DESCRIPTOR), 1);
    ck_assert_int_eq(obs(&rep, age, FM_OBS_STAY_DROPPED), 1);
    ck_assert_int_eq(obs(&rep, entry(&map, "Weight", "static"), FM_OBS_KEPT), 1);
    ck_assert_int_eq(rep.stays_no_time_series, 2); /* stay 3 (only Age) and stay 4 (no rows) */
    ck_assert_int_eq(rep.obs_unmapped, 1);
    ck_assert_int_eq(rep.lines_read, 14);
    /* Labels: 6 columns; the phenotype task groups phe_a and phe_b. */
    ck_assert_int_eq(c.n_labels, 6);
    ck_assert_str_eq(c.label_info[3].name, "phe_a");
    ck_assert_str_eq(c.label_info[3].task, "phenotype");
    ck_assert_str_eq(c.label_info[4].task, "phenotype");
    ck_assert_str_eq(c.label_info[5].task, "flag");
    ck_assert_int_eq(c.label_info[1].kind, FM_LABEL_REGRESSION);
    ck_assert_float_eq_tol(lab(&c, 0, "los_log_days"), logf(1.5f), 1e-6);
    ck_assert_float_eq_tol(lab(&c, 1, "los_log_days"), logf(11.0f), 1e-6);
    ck_assert_float_eq(lab(&c, 0, "phe_a"), 1);
    ck_assert(isnan(lab(&c, 0, "flag")));
    ck_assert_float_eq(lab(&c, 1, "flag"), 1);
    fm_cohort_free(&c);
    fm_var_map_free(&map);
    fm_report_free(&rep);
    fm_test_rmtree(dir);
}
END_TEST

/* Unmapped variables are counted by name (many names: the report's hash table grows); a
 * preparation that keeps no stay is an error. */
START_TEST(test_unmapped_names_and_empty_cohort) {
    char dir[512], ob[1024], lb[1024], mp[1024];
    fm_test_tmpdir(dir, sizeof dir);
    char *text = fm_malloc(200000);
    ck_assert_ptr_nonnull(text);
    size_t used = (size_t)snprintf(text, 200000, "stay_id,time_h,variable,value\n1,1,HR,80\n");
    for (int rep = 0; rep < 3; rep++)
        for (int k = 0; k < 300; k++)
            used += (size_t)snprintf(text + used, 200000 - used, "1,1,item%d,%d\n", k, rep);
    write_text(dir, "obs.csv", text, ob, sizeof ob);
    fm_free(text);
    write_text(dir, "labels.csv", "stay_id,mortality,los_days\n1,0,3\n", lb, sizeof lb);
    write_text(dir, "map.csv", "variable,modality\nHR,vitals\n", mp, sizeof mp);
    FmPrepareOptions o = fm_prepare_defaults();
    o.long_csv = ob;
    const char *lf[] = {lb};
    o.label_files = lf;
    o.n_label_files = 1;
    o.mapping = mp;
    FmCohort c;
    FmVarMap map;
    FmPrepareReport rep;
    FmError err;
    ck_assert_int_eq(fm_prepare_run(&o, &c, &map, &rep, &err), FM_OK);
    ck_assert_int_eq(rep.n_unmapped, 300);
    ck_assert_int_eq(rep.obs_unmapped, 900);
    for (int k = 0; k < 300; k++) {
        char name[32];
        snprintf(name, sizeof name, "item%d", k);
        ck_assert_str_eq(rep.unmapped[k].name, name); /* order of first appearance */
        ck_assert_int_eq(rep.unmapped[k].count, 3);
    }
    fm_cohort_free(&c);
    fm_var_map_free(&map);
    fm_report_free(&rep);
    /* Every value out of range: nothing is left. */
    write_text(dir, "map.csv", "variable,modality,min,max\nHR,vitals,100,300\n", mp, sizeof mp);
    ck_assert_int_eq(fm_prepare_run(&o, &c, &map, &rep, &err), FM_ERR_CONFIG);
    ck_assert_str_eq(err.message,
                     "no stay remains: all 1 were dropped (0 without time series, 1 without a valid "
                     "observation; check the mapping and the window)");
    fm_test_rmtree(dir);
}
END_TEST

/* Events through the builder: window, non-finite vectors, unknown stays, time order, a stay
 * kept by its events alone. */
START_TEST(test_builder_events) {
    char dir[512], mp[1024];
    fm_test_tmpdir(dir, sizeof dir);
    write_text(dir, "map.csv", "variable,modality\nHR,vitals\n", mp, sizeof mp);
    FmVarMap map;
    FmError err;
    ck_assert_int_eq(fm_var_map_read(mp, &map, &err), FM_OK);
    FmPrepareReport rep;
    ck_assert_int_eq(fm_report_init(&rep, map.n_entries, &err), FM_OK);
    FmBuildOptions bo = {48.0, 0, 0.0, 0};
    FmCohortBuilder b;
    ck_assert_int_eq(fm_cohort_builder_init(&b, &map, &bo, &rep, &err), FM_OK);
    /* 7 notes of width 2: stay 1 at 5, 2, -1 (before), 2 (tie: file order kept); stay 5 at 50
     * (after) and 1; stay 9 (not a cohort stay); stay 1 with a NaN. */
    FmEventTable t;
    t.n = 7;
    t.dim = 2;
    t.stay_id = fm_malloc_array(7, sizeof(int64_t));
    t.time_h = fm_malloc_array(7, sizeof(float));
    t.values = fm_malloc_array(14, sizeof(float));
    const int64_t ids[] = {1, 1, 9, 1, 5, 1, 5};
    const float times[] = {5, 2, 3, -1, 50, 2, 1};
    for (int i = 0; i < 7; i++) {
        t.stay_id[i] = ids[i];
        t.time_h[i] = times[i];
        t.values[2 * i] = (float)i;
        t.values[2 * i + 1] = (float)(10 * i);
    }
    t.values[2 * 5 + 1] = NAN; /* row 5 (stay 1, 2 h) is dropped */
    ck_assert_int_eq(fm_cohort_builder_add_events(&b, "notes", FM_MODALITY_EVENTS, 0, &t, "notes.h5", &err),
                     FM_OK);
    ck_assert_ptr_null(t.values); /* ownership taken */
    FmRawObs o1[] = {{0, 0, 1.0f, 80.0f}};
    int kept;
    ck_assert_int_eq(fm_cohort_builder_add_stay(&b, 1, 0, o1, 1, 1, "s1", &kept, &err), FM_OK);
    ck_assert(kept);
    ck_assert_int_eq(fm_cohort_builder_add_stay(&b, 5, 1, NULL, 0, 0, "s5", &kept, &err), FM_OK);
    ck_assert(kept); /* kept by its note at 1 h */
    ck_assert_int_eq(fm_cohort_builder_add_stay(&b, 6, 2, NULL, 0, 0, "s6", &kept, &err), FM_OK);
    ck_assert(!kept);
    ck_assert_int_eq(fm_cohort_builder_add_stay(&b, 1, 3, NULL, 0, 0, "again", &kept, &err), FM_ERR_FORMAT);
    ck_assert_str_eq(err.message, "stay 1 was already read");
    FmCohort c;
    memset(&c, 0, sizeof c);
    int32_t *rows;
    ck_assert_int_eq(fm_cohort_builder_finish(&b, &c, &rows, &err), FM_OK);
    ck_assert_int_eq(c.N, 2);
    ck_assert_int_eq(rows[0], 0);
    ck_assert_int_eq(rows[1], 1);
    fm_free(rows);
    ck_assert_int_eq(c.M, 2);
    const FmCohortModality *n = &c.mod[1];
    ck_assert_str_eq(n->name, "notes");
    ck_assert_int_eq(n->kind, FM_MODALITY_EVENTS);
    ck_assert_ptr_null(n->mask);
    ck_assert_int_eq(n->count[0], 2);
    ck_assert_float_eq(n->time[0], 2); /* row 1 */
    ck_assert_float_eq(n->value[0], 1);
    ck_assert_float_eq(n->time[1], 5); /* row 0 */
    ck_assert_float_eq(n->value[2], 0);
    ck_assert_int_eq(n->count[1], 1);
    ck_assert_float_eq(n->value[2 * 2 + 1], 60); /* row 6 */
    ck_assert_int_eq(n->max_L, 2);
    ck_assert(!c.mod[0].present[1]); /* stay 5 has no vitals */
    ck_assert_int_eq(rep.events[0][FM_EVENT_KEPT], 3);
    ck_assert_int_eq(rep.events[0][FM_EVENT_BEFORE_WINDOW], 1);
    ck_assert_int_eq(rep.events[0][FM_EVENT_AFTER_WINDOW], 1);
    ck_assert_int_eq(rep.events[0][FM_EVENT_NONFINITE], 1);
    ck_assert_int_eq(rep.events[0][FM_EVENT_UNKNOWN_STAY], 1);
    ck_assert_int_eq(rep.events_read[0], 7);
    ck_assert_int_eq(rep.stays_no_time_series, 1);
    fm_cohort_free(&c);
    fm_cohort_builder_free(&b);
    /* Structural errors of an event table. */
    ck_assert_int_eq(fm_cohort_builder_init(&b, &map, &bo, &rep, &err), FM_OK);
    t.n = 1;
    t.dim = 4;
    t.stay_id = fm_calloc(1, sizeof(int64_t));
    t.time_h = fm_calloc(1, sizeof(float));
    t.values = fm_calloc(4, sizeof(float));
    ck_assert_int_eq(fm_cohort_builder_add_events(&b, "images", FM_MODALITY_IMAGES, 3, &t, "idx.csv", &err),
                     FM_ERR_FORMAT);
    ck_assert_str_eq(err.message, "images have 4 pixels, expected 3 x 3");
    t.n = 1;
    t.dim = 2;
    t.stay_id = fm_calloc(1, sizeof(int64_t));
    t.time_h = fm_calloc(1, sizeof(float));
    t.values = fm_calloc(2, sizeof(float));
    t.time_h[0] = NAN;
    ck_assert_int_eq(fm_cohort_builder_add_events(&b, "notes", FM_MODALITY_EVENTS, 0, &t, "n.h5", &err),
                     FM_ERR_FORMAT);
    ck_assert_str_eq(err.where, "n.h5");
    ck_assert_str_eq(err.message, "row 0 (stay 0): time is not a finite number");
    fm_cohort_builder_free(&b);
    fm_report_free(&rep);
    fm_var_map_free(&map);
    fm_test_rmtree(dir);
}
END_TEST

/* Note embeddings, image features and image pixels through fm_prepare_run, written with the
 * readers' own writers; then a batch (notes standardised, pixels passed through). */
static void event_table(FmEventTable *t, int n, int dim, const int64_t *ids, const float *times,
                        const float *v) {
    t->n = (size_t)n;
    t->dim = dim;
    t->stay_id = fm_malloc_array((size_t)n, sizeof(int64_t));
    t->time_h = fm_malloc_array((size_t)n, sizeof(float));
    t->values = fm_malloc_array((size_t)n * (size_t)dim, sizeof(float));
    ck_assert(t->stay_id && t->time_h && t->values);
    memcpy(t->stay_id, ids, (size_t)n * sizeof(int64_t));
    memcpy(t->time_h, times, (size_t)n * sizeof(float));
    memcpy(t->values, v, (size_t)n * (size_t)dim * sizeof(float));
}

START_TEST(test_prepare_with_notes_and_images) {
    char dir[512], ob[1024], lb[1024], mp[1024], notes[1024], feats[1024], index[1024], png[1100];
    fm_test_tmpdir(dir, sizeof dir);
    write_text(dir, "obs.csv", "stay_id,time_h,variable,value\n1,1,HR,80\n2,2,HR,90\n3,3,HR,100\n", ob,
               sizeof ob);
    write_text(dir, "labels.csv", "stay_id,mortality,los_days\n1,0,3\n2,1,5\n3,0,9\n4,0,1\n", lb, sizeof lb);
    write_text(dir, "map.csv", "variable,modality\nHR,vitals\n", mp, sizeof mp);
    FmEventTable t;
    FmError err;
    const int64_t nid[] = {2, 1, 1, 9, 4, 1};
    const float nt[] = {5, 3, 1, 1, 2, 60}, nv[] = {1, 2, 3, 4, 5, 6, 0, 0, 7, 8, 1, 1};
    event_table(&t, 6, 2, nid, nt, nv);
    snprintf(notes, sizeof notes, "%s/notes.h5", dir);
    ck_assert_int_eq(fm_notes_write_h5(notes, &t, &err), FM_OK);
    fm_event_table_free(&t);
    const int64_t fid[] = {3};
    const float ft[] = {10}, fv[] = {0.5f};
    event_table(&t, 1, 1, fid, ft, fv);
    snprintf(feats, sizeof feats, "%s/feats.h5", dir);
    ck_assert_int_eq(fm_image_features_write_h5(feats, &t, &err), FM_OK);
    fm_event_table_free(&t);
    /* Two 4 x 4 PNGs: all white, and white with a black top-left 2 x 2 block. At S = 2 each
     * output pixel is the mean of a 2 x 2 block. */
    uint8_t white[16], corner[16];
    for (int k = 0; k < 16; k++)
        white[k] = 255, corner[k] = (k % 4 < 2 && k / 4 < 2) ? 0 : 255;
    snprintf(png, sizeof png, "%s/a.png", dir);
    ck_assert_int_eq(fm_png_write_gray8(png, white, 4, 4, &err), FM_OK);
    snprintf(png, sizeof png, "%s/b.png", dir);
    ck_assert_int_eq(fm_png_write_gray8(png, corner, 4, 4, &err), FM_OK);
    write_text(dir, "index.csv", "stay_id,time_h,path\n1,12,a.png\n3,0,b.png\n", index, sizeof index);

    FmPrepareOptions o = fm_prepare_defaults();
    o.long_csv = ob;
    const char *lf[] = {lb};
    o.label_files = lf;
    o.n_label_files = 1;
    o.mapping = mp;
    o.notes_h5 = notes;
    o.image_features_h5 = feats;
    o.image_index = index;
    o.image_size = 2;
    o.splits.n = 1;
    o.splits.frac[0] = 1.0; /* every stay in training */
    o.splits.frac[1] = o.splits.frac[2] = 0.0;
    FmCohort c;
    FmVarMap map;
    FmPrepareReport rep;
    ck_assert_msg(fm_prepare_run(&o, &c, &map, &rep, &err) == FM_OK, "%s: %s", err.where, err.message);
    ck_assert_int_eq(c.N, 4); /* stay 4 is kept by its note alone */
    ck_assert_int_eq(c.M, 4);
    ck_assert_str_eq(c.mod[1].name, "notes");
    ck_assert_str_eq(c.mod[2].name, "image_features");
    ck_assert_str_eq(c.mod[3].name, "images");
    const FmCohortModality *n = &c.mod[1], *f = &c.mod[2], *im = &c.mod[3];
    ck_assert_int_eq(n->kind, FM_MODALITY_EVENTS);
    ck_assert_int_eq(im->kind, FM_MODALITY_IMAGES);
    ck_assert_int_eq(im->image_size, 2);
    ck_assert_int_eq(im->C, 4);
    const int32_t want_n[] = {2, 1, 0, 1}, want_f[] = {0, 0, 1, 0}, want_i[] = {1, 0, 1, 0};
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(n->count[i], want_n[i]);
        ck_assert_int_eq(f->count[i], want_f[i]);
        ck_assert_int_eq(im->count[i], want_i[i]);
        ck_assert_int_eq(n->present[i], want_n[i] > 0);
    }
    ck_assert(!c.mod[0].present[3]);
    const float want_nt[] = {1, 3, 5, 2}, want_nv[] = {5, 6, 3, 4, 1, 2, 7, 8};
    for (int r = 0; r < 4; r++)
        ck_assert_float_eq(n->time[r], want_nt[r]);
    for (int k = 0; k < 8; k++)
        ck_assert_float_eq(n->value[k], want_nv[k]);
    ck_assert_float_eq(f->value[0], 0.5f);
    ck_assert_float_eq(im->time[0], 12);
    const float want_px[] = {1, 1, 1, 1, 0, 1, 1, 1};
    for (int k = 0; k < 8; k++)
        ck_assert_float_eq_tol(im->value[k], want_px[k], 1e-6);
    ck_assert_int_eq(rep.n_event_mods, 3);
    ck_assert_str_eq(rep.event_name[0], "notes");
    ck_assert_int_eq(rep.events_read[0], 6);
    ck_assert_int_eq(rep.events[0][FM_EVENT_KEPT], 4);
    ck_assert_int_eq(rep.events[0][FM_EVENT_AFTER_WINDOW], 1);
    ck_assert_int_eq(rep.events[0][FM_EVENT_UNKNOWN_STAY], 1);
    ck_assert_int_eq(rep.events[2][FM_EVENT_KEPT], 2);
    /* Notes are standardised with the training statistics; pixels are not. */
    const FmNormModality *nn = &c.split[0].norm.mod[1];
    ck_assert_double_eq_tol(nn->mean[0], (5 + 3 + 1 + 7) / 4.0, 1e-9);
    ck_assert_int_eq(c.split[0].norm.mod[3].standardise, 0);
    FmBatch b;
    ck_assert_int_eq(fm_cohort_batch_alloc(&c, 4, &b, &err), FM_OK);
    const int64_t idx[] = {0, 1, 2, 3};
    ck_assert_int_eq(fm_cohort_make_batch(&c, 0, idx, 4, &b, &err), FM_OK);
    ck_assert_int_eq(b.mod[1].max_L, 2);
    ck_assert_float_eq_tol(b.mod[1].value[0], (float)((5 - nn->mean[0]) / nn->std[0]), 1e-6);
    ck_assert_int_eq(b.mod[1].mask[0], 1);
    ck_assert_int_eq(b.mod[1].mask[2 * 2 + 1], 0); /* stay 2's padding row */
    ck_assert_float_eq_tol(b.mod[1].time[1], 3.0f / 48, 1e-7);
    ck_assert_int_eq(b.mod[3].max_L, 1);
    ck_assert_float_eq_tol(b.mod[3].value[2 * 4 + 0], 0.0f, 1e-6); /* stay 3's first pixel */
    ck_assert_float_eq_tol(b.mod[3].value[2 * 4 + 1], 1.0f, 1e-6);
    ck_assert(!b.mod[3].present[1]);
    fm_cohort_batch_free(&b);
    /* Through the file and back. */
    char path[1024];
    snprintf(path, sizeof path, "%s/c.h5", dir);
    ck_assert_int_eq(fm_cohort_save(&c, path, &err), FM_OK);
    FmCohort d;
    ck_assert_int_eq(fm_cohort_load(path, &d, &err), FM_OK);
    ck_assert_int_eq(d.mod[3].image_size, 2);
    ck_assert_ptr_null(d.mod[1].mask);
    ck_assert_mem_eq(d.mod[3].value, im->value, 8 * sizeof(float));
    fm_cohort_free(&d);
    fm_cohort_free(&c);
    fm_var_map_free(&map);
    fm_report_free(&rep);
    /* Every allocation failure with event inputs is reported and cleaned up. */
    fm_alloc_fail_reset();
    ck_assert_int_eq(fm_prepare_run(&o, &c, &map, &rep, &err), FM_OK);
    long calls = fm_alloc_calls();
    fm_cohort_free(&c);
    fm_var_map_free(&map);
    fm_report_free(&rep);
    for (long k = 1; k <= calls; k++) {
        fm_alloc_fail_after(k);
        FmStatus st = fm_prepare_run(&o, &c, &map, &rep, &err);
        fm_alloc_fail_reset();
        ck_assert_msg(st == FM_ERR_NOMEM, "allocation %ld of %ld: status %d (%s: %s)", k, calls, st,
                      err.where, err.message);
        ck_assert_ptr_null(c.mod);
    }
    /* A reader's error comes through with its file and dataset. */
    write_text(dir, "notes.h5", "not hdf5", NULL, 0);
    ck_assert_int_eq(fm_prepare_run(&o, &c, &map, &rep, &err), FM_ERR_FORMAT);
    ck_assert_str_eq(err.where, notes);
    write_text(dir, "index.csv", "stay_id,time_h,path\n1,12,missing.png\n", NULL, 0);
    o.notes_h5 = NULL;
    ck_assert_int_eq(fm_prepare_run(&o, &c, &map, &rep, &err), FM_ERR_IO);
    ck_assert_msg(strstr(err.where, "index.csv:2") != NULL, "%s", err.where);
    fm_test_rmtree(dir);
}
END_TEST

/* ---- splits ---- */

static void strata(uint8_t *s, int64_t N) {
    for (int64_t i = 0; i < N; i++)
        s[i] = i % 7 == 0 ? 1 : (i % 53 == 0 ? 2 : 0);
}

START_TEST(test_splits_repeated) {
    enum { N = 1000 };
    uint8_t st[N];
    strata(st, N);
    FmSplitSpec spec;
    FmError err;
    ck_assert_int_eq(fm_splits_parse("repeated:3", &spec, &err), FM_OK);
    FmCohortSplit *a, *b, *c5, *d;
    int na, nb, n5, nd;
    ck_assert_int_eq(fm_splits_make(&spec, 42, N, st, &a, &na, &err), FM_OK);
    ck_assert_int_eq(fm_splits_make(&spec, 42, N, st, &b, &nb, &err), FM_OK);
    ck_assert_int_eq(fm_splits_make(&spec, 43, N, st, &d, &nd, &err), FM_OK);
    ck_assert_int_eq(fm_splits_parse("repeated:5", &spec, &err), FM_OK);
    ck_assert_int_eq(fm_splits_make(&spec, 42, N, st, &c5, &n5, &err), FM_OK);
    ck_assert_int_eq(na, 3);
    ck_assert_str_eq(a[2].name, "repeat2");
    for (int r = 0; r < 3; r++) {
        ck_assert_mem_eq(a[r].part, b[r].part, N);  /* same seed, same splits */
        ck_assert_mem_eq(a[r].part, c5[r].part, N); /* more repeats leave the first ones alone */
        ck_assert_int_ne(memcmp(a[r].part, d[r].part, N), 0);
        if (r) ck_assert_int_ne(memcmp(a[r].part, a[0].part, N), 0);
        /* Stratified: per stratum, val and test are round(10 %) each. */
        int64_t count[3][4] = {{0}}, size[3] = {0};
        for (int i = 0; i < N; i++)
            count[st[i]][a[r].part[i]]++, size[st[i]]++;
        for (int g = 0; g < 3; g++) {
            ck_assert_int_eq(count[g][FM_PART_VAL], llround(0.1 * (double)size[g]));
            ck_assert_int_eq(count[g][FM_PART_TEST], llround(0.1 * (double)size[g]));
            ck_assert_int_eq(count[g][FM_PART_NONE], 0);
        }
    }
    fm_splits_free(a, na);
    fm_splits_free(b, nb);
    fm_splits_free(c5, n5);
    fm_splits_free(d, nd);
    /* Fractions and bad specs. */
    ck_assert_int_eq(fm_splits_parse("repeated:2:0.7,0.15,0.15", &spec, &err), FM_OK);
    ck_assert_double_eq(spec.frac[0], 0.7);
    char text[64];
    fm_splits_describe(&spec, text, sizeof text);
    ck_assert_str_eq(text, "repeated:2:0.7,0.15,0.15");
    const char *bad[] = {"repeated", "repeated:0", "repeated:2:0.5,0.5", "repeated:2:0.5,0.3,0.3",
                         "kfold:2",  "kfold:x",    "random:3",           "repeated:3x"};
    for (int i = 0; i < 8; i++)
        ck_assert_msg(fm_splits_parse(bad[i], &spec, &err) == FM_ERR_ARG, "accepted %s", bad[i]);
}
END_TEST

START_TEST(test_splits_kfold) {
    enum { N = 997 };
    uint8_t st[N];
    strata(st, N);
    FmSplitSpec spec;
    FmError err;
    ck_assert_int_eq(fm_splits_parse("kfold:5", &spec, &err), FM_OK);
    FmCohortSplit *s;
    int n;
    ck_assert_int_eq(fm_splits_make(&spec, 7, N, st, &s, &n, &err), FM_OK);
    ck_assert_int_eq(n, 5);
    int tests[N] = {0};
    int64_t fold_size[5] = {0}, fold_deaths[5] = {0};
    for (int f = 0; f < 5; f++) {
        for (int i = 0; i < N; i++) {
            if (s[f].part[i] == FM_PART_TEST) tests[i]++, fold_size[f]++, fold_deaths[f] += st[i] == 1;
            /* validation of fold f is the test fold of f + 1 */
            ck_assert_int_eq(s[f].part[i] == FM_PART_VAL, s[(f + 1) % 5].part[i] == FM_PART_TEST);
            ck_assert_int_ne(s[f].part[i], FM_PART_NONE);
        }
    }
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(tests[i], 1);
    for (int f = 1; f < 5; f++) {
        ck_assert_int_le(llabs(fold_size[f] - fold_size[0]), 1);
        ck_assert_int_le(llabs(fold_deaths[f] - fold_deaths[0]), 1);
    }
    fm_splits_free(s, n);
}
END_TEST

START_TEST(test_split_file) {
    char dir[512], path[1024];
    fm_test_tmpdir(dir, sizeof dir);
    const int64_t ids[] = {10, 11, 12};
    write_text(dir, "s.csv", "a,stay_id,b\ntrain,10,test\nval,11,\ntest,12,train\ntrain,99,val\n", path,
               sizeof path);
    FmCohortSplit *s;
    int n;
    int64_t ignored;
    FmError err;
    ck_assert_int_eq(fm_splits_read_file(path, "stay_id", ids, 3, &s, &n, &ignored, &err), FM_OK);
    ck_assert_int_eq(n, 2);
    ck_assert_int_eq(ignored, 1);
    ck_assert_str_eq(s[0].name, "a");
    ck_assert_str_eq(s[1].name, "b");
    const uint8_t want_a[] = {FM_PART_TRAIN, FM_PART_VAL, FM_PART_TEST},
                  want_b[] = {FM_PART_TEST, FM_PART_NONE, FM_PART_TRAIN};
    ck_assert_mem_eq(s[0].part, want_a, 3);
    ck_assert_mem_eq(s[1].part, want_b, 3);
    fm_splits_free(s, n);
    write_text(dir, "t.csv", "stay_id,x\n10,train\n11,tset\n12,val\n", path, sizeof path);
    ck_assert_int_eq(fm_splits_read_file(path, "stay_id", ids, 3, &s, &n, &ignored, &err), FM_ERR_FORMAT);
    ck_assert_msg(strstr(err.where, "t.csv:3") != NULL, "%s", err.where);
    ck_assert_str_eq(err.message, "column x: expected train, val, test or none, got \"tset\"");
    write_text(dir, "u.csv", "stay_id,x\n10,train\n11,val\n", path, sizeof path);
    ck_assert_int_eq(fm_splits_read_file(path, "stay_id", ids, 3, &s, &n, &ignored, &err), FM_ERR_FORMAT);
    ck_assert_msg(strstr(err.message, "stay 12 has no row") != NULL, "%s", err.message);
    write_text(dir, "v.csv", "stay_id,x\n10,train\n11,val\n10,test\n12,val\n", path, sizeof path);
    ck_assert_int_eq(fm_splits_read_file(path, "stay_id", ids, 3, &s, &n, &ignored, &err), FM_ERR_FORMAT);
    ck_assert_str_eq(err.message, "stay 10 already has a row (line 2)");
    write_text(dir, "w.csv", "id,x\n10,train\n", path, sizeof path);
    ck_assert_int_eq(fm_splits_read_file(path, "stay_id", ids, 3, &s, &n, &ignored, &err), FM_ERR_FORMAT);
    ck_assert_str_eq(err.message, "missing column 'stay_id'");
    fm_test_rmtree(dir);
}
END_TEST

/* The splits stored by prepare: stratified by mortality, standardisation fitted on training
 * stays only (checked against a direct computation). */
START_TEST(test_prepare_norm_on_train_only) {
    FmCohort c;
    FmVarMap map;
    FmPrepareReport rep;
    FmError err;
    ck_assert_int_eq(run_small(&c, &map, &rep, &err), FM_OK);
    /* Put stay 100002 out of training by hand and refit. */
    uint8_t part[2] = {FM_PART_TRAIN, FM_PART_TEST};
    FmNorm nm;
    ck_assert_int_eq(fm_cohort_fit_norm(&c, part, &nm, &err), FM_OK);
    int V = fm_cohort_find_modality(&c, "vitals"), S = fm_cohort_find_modality(&c, "static");
    int hr = chan(&c, V, "HR"), wv = chan(&c, V, "Weight");
    /* HR of stay 100001: 73, 75, 85, 60 -> mean 73.25, population std sqrt(79.1875). */
    ck_assert_double_eq_tol(nm.mod[V].mean[hr], 73.25, 1e-9);
    ck_assert_double_eq_tol(nm.mod[V].std[hr], sqrt(79.1875), 1e-9);
    /* Weight only observed in the test stay: neutral statistics. */
    ck_assert_double_eq(nm.mod[V].mean[wv], 0.0);
    ck_assert_double_eq(nm.mod[V].std[wv], 1.0);
    /* A single training value: std 0 floored. */
    ck_assert_double_eq(nm.mod[S].std[0], FM_NORM_STD_FLOOR);
    fm_norm_free(&nm);
    ck_assert_int_eq(c.n_splits, 5);
    fm_cohort_free(&c);
    fm_var_map_free(&map);
    fm_report_free(&rep);
}
END_TEST

/* Fails every allocation of a small P12 preparation in turn: each must report FM_ERR_NOMEM
 * and free everything (AddressSanitizer's leak check runs under make asan). */
START_TEST(test_prepare_alloc_failure) {
    FmCohort c;
    FmVarMap map;
    FmPrepareReport rep;
    FmError err;
    fm_alloc_fail_reset();
    ck_assert_int_eq(run_small(&c, &map, &rep, &err), FM_OK);
    long calls = fm_alloc_calls();
    fm_cohort_free(&c);
    fm_var_map_free(&map);
    fm_report_free(&rep);
    ck_assert_int_gt(calls, 50);
    for (long k = 1; k <= calls; k++) {
        fm_alloc_fail_after(k);
        FmStatus st = run_small(&c, &map, &rep, &err);
        fm_alloc_fail_reset();
        ck_assert_msg(st == FM_ERR_NOMEM, "allocation %ld: status %d (%s: %s)", k, st, err.where,
                      err.message);
        ck_assert_ptr_null(c.mod);
        ck_assert_ptr_null(map.entries);
        ck_assert_ptr_null(rep.obs);
    }
}
END_TEST

/* ---- real PhysioNet 2012 records ---- */

/* The first 25 records of set A, prepared and compared with a plain re-reading of the files
 * (fgets and strtod, the rules applied one observation at a time): every series value of
 * every stay must be the mean of the valid values of its variable at its time. */
START_TEST(test_p12_subset_against_plain_reading) {
    char dir[512], sub[600], src[PATH_MAX], dst[PATH_MAX + 64], outcomes[1024];
    const char *sh = fm_test_shared_dir();
    fm_test_tmpdir(dir, sizeof dir);
    snprintf(sub, sizeof sub, "%s/set-a", dir);
    mkdir(sub, 0755);
    char rel[1024];
    snprintf(rel, sizeof rel, "%s/data/physionet2012/set-a", sh);
    ck_assert_msg(realpath(rel, src) != NULL, "%s: not found (is FUSEMOE_SHARED set?)", rel);
    DIR *d = opendir(src);
    ck_assert_msg(d != NULL, "%s: cannot open (is FUSEMOE_SHARED set?)", src);
    char names[4096][16];
    int n_names = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n_names < 4096)
        if (strstr(e->d_name, ".txt")) snprintf(names[n_names++], sizeof names[0], "%s", e->d_name);
    closedir(d);
    qsort(names, (size_t)n_names, sizeof names[0], (int (*)(const void *, const void *))strcmp);
    enum { K = 25 };
    for (int i = 0; i < K; i++) {
        snprintf(dst, sizeof dst, "%s/%s", sub, names[i]);
        char target[PATH_MAX + 64];
        snprintf(target, sizeof target, "%s/%s", src, names[i]);
        ck_assert_int_eq(symlink(target, dst), 0);
    }
    snprintf(outcomes, sizeof outcomes, "%s/data/physionet2012/Outcomes-a.txt", sh);
    FmPrepareOptions o = fm_prepare_defaults();
    const char *dd[] = {sub}, *ff[] = {outcomes};
    o.p12_dirs = dd;
    o.n_p12_dirs = 1;
    o.outcome_files = ff;
    o.n_outcome_files = 1;
    FmCohort c;
    FmVarMap map;
    FmPrepareReport rep;
    FmError err;
    ck_assert_msg(fm_prepare_run(&o, &c, &map, &rep, &err) == FM_OK, "%s: %s", err.where, err.message);
    ck_assert_int_eq(rep.records_read, K);
    ck_assert_int_eq(rep.outcomes_without_stay, 4000 - K);
    int64_t checked = 0, lines = 0;
    for (int i = 0; i < K; i++) {
        int64_t id = strtoll(names[i], NULL, 10), ci = -1;
        for (int64_t j = 0; j < c.N; j++)
            if (c.stay_id[j] == id) ci = j;
        snprintf(dst, sizeof dst, "%s/%s", sub, names[i]);
        FILE *f = fopen(dst, "r");
        ck_assert_ptr_nonnull(f);
        static struct {
            int m, ch;
            float t;
            double v;
        } ob[4096];
        int n = 0, seen_desc[5] = {0};
        char line[256];
        const char *desc[5] = {"Age", "Gender", "Height", "ICUType", "Weight"};
        ck_assert_ptr_nonnull(fgets(line, sizeof line, f)); /* header */
        while (fgets(line, sizeof line, f)) {
            lines++;
            char *tm = strtok(line, ","), *par = strtok(NULL, ","), *val = strtok(NULL, ",\r\n");
            ck_assert(tm && par && val);
            int hh, mm;
            ck_assert_int_eq(sscanf(tm, "%d:%d", &hh, &mm), 2);
            float t = (float)(hh + mm / 60.0);
            double v = strtod(val, NULL);
            int is_desc = 0;
            for (int k = 0; k < 5; k++)
                if (t == 0 && strcmp(par, desc[k]) == 0 && !seen_desc[k]) is_desc = 1, seen_desc[k] = 1;
            if (is_desc || strcmp(par, "RecordID") == 0) continue;
            for (int m = 0; m < c.M; m++) {
                if (c.mod[m].kind != FM_MODALITY_SERIES) continue;
                for (int ch = 0; ch < c.mod[m].C; ch++) {
                    /* a log1p channel holds log(1 + value) of its variable */
                    const char *name = c.mod[m].channel[ch];
                    int is_log = strncmp(name, "log1p(", 6) == 0;
                    size_t len = is_log ? strlen(name) - 7 : strlen(name);
                    if (strlen(par) != len || strncmp(is_log ? name + 6 : name, par, len) != 0) continue;
                    if (v == -1 || t > 48 || v < c.mod[m].range_min[ch] || v > c.mod[m].range_max[ch])
                        continue;
                    ck_assert_int_lt(n, 4096);
                    ob[n].m = m, ob[n].ch = ch, ob[n].t = t, ob[n].v = is_log ? log1p(v) : v, n++;
                }
            }
        }
        fclose(f);
        if (ci < 0) {
            ck_assert_int_eq(n, 0); /* only a stay without valid observations may be missing */
            continue;
        }
        for (int m = 0; m < c.M; m++) {
            if (c.mod[m].kind != FM_MODALITY_SERIES) continue;
            for (int ch = 0; ch < c.mod[m].C; ch++) {
                int rows = 0;
                for (int r = 0; r < c.mod[m].count[ci]; r++) {
                    if (!msk(&c, m, ci, r, ch)) continue;
                    rows++;
                    double sum = 0;
                    int k = 0;
                    for (int q = 0; q < n; q++)
                        if (ob[q].m == m && ob[q].ch == ch && ob[q].t == tim(&c, m, ci, r))
                            sum += ob[q].v, k++;
                    ck_assert_msg(k > 0, "stay %lld %s at %g h: not in the file", (long long)id,
                                  c.mod[m].channel[ch], tim(&c, m, ci, r));
                    ck_assert_float_eq_tol(val(&c, m, ci, r, ch), (float)(sum / k), 1e-4);
                    checked++;
                }
                /* as many rows as distinct valid times */
                int distinct = 0;
                for (int q = 0; q < n; q++) {
                    if (ob[q].m != m || ob[q].ch != ch) continue;
                    int first = 1;
                    for (int p = 0; p < q; p++)
                        if (ob[p].m == m && ob[p].ch == ch && ob[p].t == ob[q].t) first = 0;
                    distinct += first;
                }
                ck_assert_int_eq(rows, distinct);
            }
        }
    }
    ck_assert_int_eq(lines, rep.lines_read);
    ck_assert_int_gt(checked, 5000);
    fm_cohort_free(&c);
    fm_var_map_free(&map);
    fm_report_free(&rep);
    fm_test_rmtree(dir);
}
END_TEST

/* ---- the real PhysioNet 2012 sets A and B against the data README ---- */

START_TEST(test_p12_full_counts) {
    char a[1024], b[1024], oa[1024], ob[1024];
    const char *sh = fm_test_shared_dir();
    snprintf(a, sizeof a, "%s/data/physionet2012/set-a", sh);
    snprintf(b, sizeof b, "%s/data/physionet2012/set-b", sh);
    snprintf(oa, sizeof oa, "%s/data/physionet2012/Outcomes-a.txt", sh);
    snprintf(ob, sizeof ob, "%s/data/physionet2012/Outcomes-b.txt", sh);
    FmPrepareOptions o = fm_prepare_defaults();
    const char *d[] = {a, b}, *f[] = {oa, ob};
    o.p12_dirs = d;
    o.n_p12_dirs = 2;
    o.outcome_files = f;
    o.n_outcome_files = 2;
    FmCohort c;
    FmVarMap map;
    FmPrepareReport rep;
    FmError err;
    FmStatus st = fm_prepare_run(&o, &c, &map, &rep, &err);
    ck_assert_msg(st == FM_OK, "%s: %s (is FUSEMOE_SHARED set?)", err.where, err.message);
    /* Data README: 8,000 records, 1,757,980 + 1,762,535 lines after the headers, 8,000 outcome
     * rows with 554 + 568 deaths, 10 records without time series. */
    ck_assert_int_eq(rep.records_read, 8000);
    ck_assert_int_eq(rep.lines_read, 1757980 + 1762535);
    ck_assert_int_eq(rep.outcome_rows, 8000);
    ck_assert_int_eq(rep.outcome_deaths, 554 + 568);
    ck_assert_int_eq(rep.outcomes_without_stay, 0);
    ck_assert_int_eq(rep.stays_no_time_series, 10);
    ck_assert_int_eq(rep.stays_no_valid_obs, 0);
    ck_assert_int_eq(c.N, 7990);
    const int64_t empty[] = {140501, 140936, 141264, 142731, 142998, 143656, 145611, 147514, 150309, 150649};
    for (int64_t i = 0; i < c.N; i++)
        for (int k = 0; k < 10; k++)
            ck_assert_int_ne(c.stay_id[i], empty[k]);
    /* Time-series observations: every line but the 6 descriptor lines of each record. */
    int64_t series = 0, statics = 0;
    for (int e = 0; e < map.n_entries; e++) {
        if (map.mods[map.entries[e].modality].kind == FM_MODALITY_STATIC)
            statics += obs_read(&rep, e);
        else
            series += obs_read(&rep, e);
    }
    ck_assert_int_eq(statics, 5 * 8000);
    ck_assert_int_eq(series, 1757980 + 1762535 - 6 * 8000);
    ck_assert_int_eq(rep.obs_unmapped, 0);
    /* Deaths and LOS among kept stays: none of the 10 dropped records died, and 9 of them have
     * Length_of_stay -1 (all but 142998; read from the outcome files), so of the 114 unknown
     * LOS values (data README: 60 + 54) 105 remain: 7990 - 105 = 7885 known. */
    int64_t deaths = 0, los_known = 0;
    for (int64_t i = 0; i < c.N; i++) {
        deaths += c.label_mask[i * c.n_labels] && c.label[i * c.n_labels] == 1.0f;
        los_known += c.label_mask[i * c.n_labels + 1];
    }
    ck_assert_int_eq(deaths, 1122);
    ck_assert_int_eq(los_known, 7885);
    /* Sentinels: Gender -1 in 8 records, Height -1 in 3,824, Weight -1 in 673 (all descriptor
     * lines; measured on the files with awk). Negative Temp values are below the plausible range. */
    ck_assert_int_eq(obs(&rep, entry(&map, "Gender", "static"), FM_OBS_SENTINEL), 8);
    ck_assert_int_eq(obs(&rep, entry(&map, "Height", "static"), FM_OBS_SENTINEL), 3824);
    ck_assert_int_eq(obs(&rep, entry(&map, "Weight", "static"), FM_OBS_SENTINEL), 673);
    ck_assert_int_ge(obs(&rep, entry(&map, "Temp", "vitals"), FM_OBS_BELOW_RANGE), 41);
    for (int e = 0; e < map.n_entries; e++)
        ck_assert_int_eq(obs(&rep, e, FM_OBS_AFTER_WINDOW), 0);
    fm_cohort_free(&c);
    fm_var_map_free(&map);
    fm_report_free(&rep);
}
END_TEST

/* ---- the command ---- */

/* The fusemoe binary of the same build as this suite (build/ or build-asan/): the suite lives in
 * <build>/tests/, the command in <build>/. */
static char CLI[1024] = "./build/fusemoe";

static int run_cmd(const char *cmd) {
    int rc = system(cmd);
    ck_assert_int_ne(rc, -1);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static int dir_entries(const char *dir) {
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    return n;
}

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    static char buf[65536];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

START_TEST(test_cli_prepare) {
    char dir[512], cmd[4096], path[1024];
    fm_test_tmpdir(dir, sizeof dir);
    /* A structural error: exit 1, the message on stderr, nothing written. */
    snprintf(
        cmd, sizeof cmd,
        "%s prepare --p12 tests/fixtures/p12_bad/comma_value --outcomes tests/fixtures/p12_bad/Outcomes.txt "
        "--out %s/out/c.h5 2> %s/err.txt > /dev/null",
        CLI, dir, dir);
    snprintf(path, sizeof path, "%s/out", dir);
    mkdir(path, 0755);
    ck_assert_int_eq(run_cmd(cmd), 1);
    ck_assert_int_eq(dir_entries(path), 0);
    snprintf(path, sizeof path, "%s/err.txt", dir);
    ck_assert_str_eq(slurp(path),
                     "fusemoe prepare: tests/fixtures/p12_bad/comma_value/132539.txt:17: column Value: "
                     "expected a number, got \"1,5\"\n");
    /* Usage errors: exit 2. */
    snprintf(cmd, sizeof cmd, "%s prepare --p12 x 2>/dev/null", CLI);
    ck_assert_int_eq(run_cmd(cmd), 2);
    snprintf(cmd, sizeof cmd, "%s prepare --out x.h5 --p12 a --outcomes b --splits kfold:1 2>/dev/null", CLI);
    ck_assert_int_eq(run_cmd(cmd), 2);
    snprintf(cmd, sizeof cmd, "%s prepare --out x.h5 --p12 a --bogus 1 2>/dev/null", CLI);
    ck_assert_int_eq(run_cmd(cmd), 2);
    snprintf(cmd, sizeof cmd, "%s prepare --out x.h5 --outcomes b 2>/dev/null", CLI);
    ck_assert_int_eq(run_cmd(cmd), 2);
    snprintf(cmd, sizeof cmd, "%s prepare --help > %s/help.txt", CLI, dir);
    ck_assert_int_eq(run_cmd(cmd), 0);
    snprintf(path, sizeof path, "%s/help.txt", dir);
    ck_assert(strstr(slurp(path), "--window-hours") != NULL);
    /* Success: the cohort, the report beside it, and the report on stdout. */
    snprintf(cmd, sizeof cmd,
             "%s prepare --p12 " SMALL "/set-x --outcomes " SMALL "/Outcomes-x.txt --splits kfold:3 --seed 9 "
             "--out %s/out/c.h5 > %s/stdout.txt 2>/dev/null",
             CLI, dir, dir);
    ck_assert_int_eq(run_cmd(cmd), 0);
    snprintf(path, sizeof path, "%s/out", dir);
    ck_assert_int_eq(dir_entries(path), 2);
    snprintf(path, sizeof path, "%s/out/c.report.txt", dir);
    char *report = slurp(path);
    ck_assert(strstr(report, "dropped: no time series                  1") != NULL);
    ck_assert(strstr(report, "Foo") != NULL);
    snprintf(path, sizeof path, "%s/out/c.h5", dir);
    FmCohort c;
    FmError err;
    ck_assert_int_eq(fm_cohort_load(path, &c, &err), FM_OK);
    ck_assert_int_eq(c.N, 2);
    ck_assert_int_eq(c.n_splits, 3);
    ck_assert_str_eq(c.settings.split_spec, "kfold:3");
    ck_assert_int_eq(c.settings.seed, 9);
    fm_cohort_free(&c);
    fm_test_rmtree(dir);
}
END_TEST

static Suite *preprocess_suite(void) {
    Suite *s = suite_create("preprocess");
    TCase *tc = tcase_create("preprocess");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_p12_rules_on_fixture);
    tcase_add_test(tc, test_window_option);
    tcase_add_test(tc, test_long_csv_rules);
    tcase_add_test(tc, test_log1p_transform);
    tcase_add_test(tc, test_unmapped_names_and_empty_cohort);
    tcase_add_test(tc, test_builder_events);
    tcase_add_test(tc, test_prepare_with_notes_and_images);
    tcase_add_test(tc, test_splits_repeated);
    tcase_add_test(tc, test_splits_kfold);
    tcase_add_test(tc, test_split_file);
    tcase_add_test(tc, test_prepare_norm_on_train_only);
    tcase_add_test(tc, test_prepare_alloc_failure);
    tcase_add_test(tc, test_p12_subset_against_plain_reading);
    tcase_add_test(tc, test_p12_full_counts);
    tcase_add_test(tc, test_cli_prepare);
    suite_add_tcase(s, tc);
    return s;
}

int main(int argc, char **argv) {
    fm_blas_select_kernel(argv);
    char self[1024];
    snprintf(self, sizeof self, "%s", argv[0]);
    char *slash = strrchr(self, '/');
    if (slash) {
        *slash = '\0'; /* <build>/tests */
        slash = strrchr(self, '/');
        if (slash) {
            *slash = '\0'; /* <build> */
            snprintf(CLI, sizeof CLI, "%s/fusemoe", self);
        }
    }
    return fm_test_run_suite(preprocess_suite());
}
