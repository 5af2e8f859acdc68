/* Loaders: the streaming CSV reader and field parsers, the mapping file, P12 records and
 * outcomes, labels CSVs, long CSVs; every structural error with its file, line and message. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "preprocessing/csv_stream.h"
#include "preprocessing/labels.h"
#include "preprocessing/prepare.h"
#include "preprocessing/var_map.h"
#include "src/alloc.h"
#include "src/blas_kernel.h"
#include "src/rng.h"
#include "tests/support/testutil.h"

/* Writes `text` to dir/name (creating one level of subfolder if name contains '/'). */
static void write_text(const char *dir, const char *name, const char *text, char *path, size_t cap) {
    char buf[1024];
    if (!path) {
        path = buf;
        cap = sizeof buf;
    }
    snprintf(path, cap, "%s/%s", dir, name);
    char sub[1024];
    snprintf(sub, sizeof sub, "%s", path);
    char *slash = strrchr(sub, '/');
    if (slash) {
        *slash = '\0';
        mkdir(sub, 0755);
    }
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

static int ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* ---- CSV stream ---- */

typedef struct {
    char fields[32][64];
    long field_line[32];
    int n_fields;
    int row_fields[16];
    long row_line[16];
    int n_rows;
} Collect;

static FmStatus collect_field(void *ctx, const FmCsvPos *pos, const char *s, size_t len, FmError *err) {
    (void)err;
    Collect *c = ctx;
    ck_assert_uint_eq(strlen(s), len);
    if (c->n_fields < 32) {
        snprintf(c->fields[c->n_fields], sizeof c->fields[0], "%s", s);
        c->field_line[c->n_fields++] = pos->line;
    }
    return FM_OK;
}

static FmStatus collect_row(void *ctx, const FmCsvPos *pos, int n, FmError *err) {
    (void)err;
    Collect *c = ctx;
    if (c->n_rows < 16) {
        c->row_fields[c->n_rows] = n;
        c->row_line[c->n_rows++] = pos->line;
    }
    return FM_OK;
}

START_TEST(test_csv_stream_lines) {
    char dir[512], path[1024];
    fm_test_tmpdir(dir, sizeof dir);
    /* CRLF line ends, a blank line, a comment, a quoted comma, no final newline. */
    write_text(dir, "a.csv", "x,y\r\n1,\"a,b\"\r\n\r\n# note\n2, 3 \n\"q\nr\",4", path, sizeof path);
    Collect c;
    memset(&c, 0, sizeof c);
    FmCsvReader r;
    fm_csv_reader_init(&r);
    FmError err;
    ck_assert_int_eq(
        fm_csv_read_file(&r, path, "a.csv", FM_CSV_COMMENTS, collect_field, collect_row, &c, &err), FM_OK);
    ck_assert_int_eq(c.n_rows, 4);
    ck_assert_int_eq(c.row_line[0], 1);
    ck_assert_int_eq(c.row_line[1], 2);
    ck_assert_int_eq(c.row_line[2], 5); /* after a blank line and a comment */
    ck_assert_int_eq(c.row_line[3], 7); /* a quoted field spanning lines 6-7 ends on 7 */
    ck_assert_str_eq(c.fields[3], "a,b");
    ck_assert_str_eq(c.fields[4], "2");
    ck_assert_str_eq(c.fields[5], "3"); /* libcsv trims unquoted blanks */
    ck_assert_str_eq(c.fields[6], "q\nr");
    ck_assert_str_eq(c.fields[7], "4");
    /* Without the comment flag the comment line is a row. */
    memset(&c, 0, sizeof c);
    ck_assert_int_eq(fm_csv_read_file(&r, path, "a.csv", 0, collect_field, collect_row, &c, &err), FM_OK);
    ck_assert_int_eq(c.n_rows, 5);
    ck_assert_str_eq(c.fields[4], "# note");
    fm_csv_reader_free(&r);
    fm_test_rmtree(dir);
}
END_TEST

START_TEST(test_csv_stream_errors) {
    char dir[512], path[1024];
    fm_test_tmpdir(dir, sizeof dir);
    Collect c;
    memset(&c, 0, sizeof c);
    FmCsvReader r;
    fm_csv_reader_init(&r);
    FmError err;
    /* A quote inside an unquoted field (strict mode). */
    write_text(dir, "q.csv", "a,b\n1,2\n3,x\"y\n", path, sizeof path);
    ck_assert_int_eq(fm_csv_read_file(&r, path, "q.csv", 0, collect_field, collect_row, &c, &err),
                     FM_ERR_FORMAT);
    ck_assert_str_eq(err.where, "q.csv:3");
    ck_assert_msg(strstr(err.message, "malformed CSV") != NULL, "%s", err.message);
    /* An unterminated quoted field at the end. */
    write_text(dir, "u.csv", "a,b\n1,\"2\n", path, sizeof path);
    ck_assert_int_eq(fm_csv_read_file(&r, path, "u.csv", 0, collect_field, collect_row, &c, &err),
                     FM_ERR_FORMAT);
    ck_assert_msg(strstr(err.message, "unterminated") != NULL, "%s", err.message);
    /* Empty file. */
    write_text(dir, "e.csv", "", path, sizeof path);
    ck_assert_int_eq(fm_csv_read_file(&r, path, "e.csv", 0, collect_field, collect_row, &c, &err),
                     FM_ERR_FORMAT);
    ck_assert_str_eq(err.where, "e.csv");
    ck_assert_str_eq(err.message, "empty file, expected a header line");
    /* Missing file. */
    snprintf(path, sizeof path, "%s/none.csv", dir);
    ck_assert_int_eq(fm_csv_read_file(&r, path, NULL, 0, collect_field, collect_row, &c, &err), FM_ERR_IO);
    ck_assert_str_eq(err.where, path);
    ck_assert_str_eq(err.message, "cannot open: No such file or directory");
    fm_csv_reader_free(&r);
    fm_test_rmtree(dir);
}
END_TEST

START_TEST(test_parse_number) {
    double v;
    ck_assert_int_eq(fm_csv_parse_number("92.33", 5, &v), FM_CSV_NUM_OK);
    ck_assert_double_eq(v, 92.33);
    ck_assert_int_eq(fm_csv_parse_number(" -17.8 ", 7, &v), FM_CSV_NUM_OK);
    ck_assert_double_eq(v, -17.8);
    ck_assert_int_eq(fm_csv_parse_number("1e3", 3, &v), FM_CSV_NUM_OK);
    ck_assert_double_eq(v, 1000.0);
    ck_assert_int_eq(fm_csv_parse_number(".5", 2, &v), FM_CSV_NUM_OK);
    ck_assert_double_eq(v, 0.5);
    ck_assert_int_eq(fm_csv_parse_number("7.", 2, &v), FM_CSV_NUM_OK);
    ck_assert_double_eq(v, 7.0);
    const char *missing[] = {"", "  ", "NaN", "nan", "NA"};
    for (int i = 0; i < 5; i++) {
        ck_assert_int_eq(fm_csv_parse_number(missing[i], strlen(missing[i]), &v), FM_CSV_NUM_MISSING);
        ck_assert(isnan(v));
    }
    const char *bad[] = {"1,5", "abc", "12a", "inf", "-", ".", "0x10", "1e", "1.2.3", "--1", "1 2"};
    for (int i = 0; i < 11; i++)
        ck_assert_msg(fm_csv_parse_number(bad[i], strlen(bad[i]), &v) == FM_CSV_NUM_BAD, "accepted \"%s\"",
                      bad[i]);
    /* The fast path must give exactly strtod's value: random decimals with up to 15 digits. */
    FmRng rng;
    fm_rng_seed(&rng, 11);
    for (int i = 0; i < 20000; i++) {
        char s[64];
        int digits = 1 + (int)fm_rng_below(&rng, 15), point = (int)fm_rng_below(&rng, (uint64_t)digits + 1);
        int k = 0;
        if (fm_rng_below(&rng, 2)) s[k++] = '-';
        for (int d = 0; d < digits; d++) {
            if (d == point && d > 0) s[k++] = '.';
            s[k++] = (char)('0' + fm_rng_below(&rng, 10));
        }
        s[k] = '\0';
        double want = strtod(s, NULL);
        ck_assert_int_eq(fm_csv_parse_number(s, (size_t)k, &v), FM_CSV_NUM_OK);
        ck_assert_msg(v == want, "%s: got %.17g, strtod %.17g", s, v, want);
    }
}
END_TEST

START_TEST(test_parse_time_and_int) {
    double h;
    ck_assert_int_eq(fm_csv_parse_hhmm("00:00", 5, &h), FM_CSV_NUM_OK);
    ck_assert_double_eq(h, 0.0);
    ck_assert_int_eq(fm_csv_parse_hhmm("36:30", 5, &h), FM_CSV_NUM_OK);
    ck_assert_double_eq(h, 36.5);
    ck_assert_int_eq(fm_csv_parse_hhmm("48:00", 5, &h), FM_CSV_NUM_OK);
    ck_assert_double_eq(h, 48.0);
    ck_assert_int_eq(fm_csv_parse_hhmm("7:15", 4, &h), FM_CSV_NUM_OK);
    ck_assert_double_eq(h, 7.25);
    ck_assert_int_eq(fm_csv_parse_hhmm("", 0, &h), FM_CSV_NUM_MISSING);
    const char *bad[] = {"0:7x", "12:60", "12:5", ":30", "12", "1:30:00", "-1:00", "ab:cd"};
    for (int i = 0; i < 8; i++)
        ck_assert_msg(fm_csv_parse_hhmm(bad[i], strlen(bad[i]), &h) == FM_CSV_NUM_BAD, "accepted %s", bad[i]);
    int64_t x;
    ck_assert_int_eq(fm_csv_parse_int64("132539", 6, &x), FM_CSV_NUM_OK);
    ck_assert_int_eq(x, 132539);
    ck_assert_int_eq(fm_csv_parse_int64("-9223372036854775807", 20, &x), FM_CSV_NUM_OK);
    ck_assert_int_eq(x, -INT64_C(9223372036854775807));
    ck_assert_int_eq(fm_csv_parse_int64("9223372036854775808", 19, &x), FM_CSV_NUM_BAD);
    ck_assert_int_eq(fm_csv_parse_int64("12.0", 4, &x), FM_CSV_NUM_BAD);
    ck_assert_int_eq(fm_csv_parse_int64("", 0, &x), FM_CSV_NUM_MISSING);
}
END_TEST

/* ---- mapping ---- */

START_TEST(test_var_map_p12) {
    FmVarMap map;
    FmError err;
    ck_assert_int_eq(fm_var_map_read("data/p12_modalities.csv", &map, &err), FM_OK);
    ck_assert_int_eq(map.n_mods, 3);
    ck_assert_str_eq(map.mods[0].name, "vitals");
    ck_assert_str_eq(map.mods[1].name, "labs");
    ck_assert_str_eq(map.mods[2].name, "static");
    ck_assert_int_eq(map.mods[2].kind, FM_MODALITY_STATIC);
    ck_assert_int_eq(map.mods[0].C, 15);
    ck_assert_int_eq(map.mods[1].C, 22);
    ck_assert_int_eq(map.mods[2].C, 5);
    /* All 36 P12 time-series variables plus MechVent... the data README lists 37 names with
     * Weight; every one is a series channel, and the 5 descriptors are static. */
    const char *ts[] = {
        "ALP",       "ALT",   "AST",       "Albumin",  "BUN",       "Bilirubin", "Cholesterol", "Creatinine",
        "DiasABP",   "FiO2",  "GCS",       "Glucose",  "HCO3",      "HCT",       "HR",          "K",
        "Lactate",   "MAP",   "MechVent",  "Mg",       "NIDiasABP", "NIMAP",     "NISysABP",    "Na",
        "PaCO2",     "PaO2",  "Platelets", "RespRate", "SaO2",      "SysABP",    "Temp",        "TroponinI",
        "TroponinT", "Urine", "WBC",       "Weight",   "pH"};
    for (int i = 0; i < 37; i++) {
        int se, st;
        ck_assert_msg(fm_var_map_lookup(&map, ts[i], strlen(ts[i]), &se, &st), "%s unmapped", ts[i]);
        ck_assert_msg(se >= 0, "%s is not a series channel", ts[i]);
    }
    int se, st;
    ck_assert(fm_var_map_lookup(&map, "Weight", 6, &se, &st));
    ck_assert_int_ge(se, 0);
    ck_assert_int_ge(st, 0);
    ck_assert_str_eq(map.mods[map.entries[st].modality].name, "static");
    ck_assert(fm_var_map_lookup(&map, "HR", 2, &se, &st));
    ck_assert_int_eq(st, -1);
    ck_assert_double_eq(map.entries[se].min, 10);
    ck_assert_double_eq(map.entries[se].max, 300);
    ck_assert(!fm_var_map_lookup(&map, "Foo", 3, &se, &st));
    ck_assert(!fm_var_map_lookup(&map, "H", 1, &se, &st)); /* prefixes do not match */
    ck_assert(!fm_var_map_lookup(&map, "RecordID", 8, &se, &st));
    fm_var_map_free(&map);
}
END_TEST

static void expect_map_error(const char *dir, const char *text, const char *where_suffix,
                             const char *message) {
    char path[1024];
    write_text(dir, "map.csv", text, path, sizeof path);
    FmVarMap map;
    FmError err;
    fm_error_clear(&err);
    ck_assert_int_eq(fm_var_map_read(path, &map, &err), FM_ERR_FORMAT);
    ck_assert_msg(ends_with(err.where, where_suffix), "where '%s', expected '...%s'", err.where,
                  where_suffix);
    ck_assert_msg(strstr(err.message, message) != NULL, "message '%s', expected '%s'", err.message, message);
    ck_assert_int_eq(map.n_entries, 0);
}

START_TEST(test_var_map_errors) {
    char dir[512];
    fm_test_tmpdir(dir, sizeof dir);
    expect_map_error(dir, "variable,kind\nHR,vitals\n", "map.csv:1",
                     "missing column 'modality' (header has: variable,kind)");
    expect_map_error(dir, "variable,modality,min,max\nHR,vitals,0,300\nK,labs,low,9\n", "map.csv:3",
                     "column min: expected a number, got \"low\"");
    expect_map_error(dir, "variable,modality,min,max\nHR,vitals,300,10\n", "map.csv:2",
                     "min 300 is above max 10");
    expect_map_error(dir, "variable,modality\nHR,vitals\nK,labs\nHR,labs\n", "map.csv:4",
                     "variable 'HR' is already a channel of modality 'vitals' (line 2)");
    expect_map_error(dir, "variable,modality\nAge,static\nAge,static\n", "map.csv:3", "already a channel");
    expect_map_error(dir, "variable,modality\nemb,notes\n", "map.csv:2", "reserved");
    expect_map_error(dir, "variable,modality\nHR,vital signs\n", "map.csv:2", "is not a modality name");
    expect_map_error(dir, "variable,modality\nHR\n", "map.csv:2",
                     "expected 2 fields (as in the header), got 1");
    expect_map_error(dir, "variable,modality\n,vitals\n", "map.csv:2", "empty variable name");
    expect_map_error(dir, "variable,modality,min,max,transform\nALP,labs,0,5000,log\n", "map.csv:2",
                     "column transform: \"log\" is not one of log1p, none (or empty)");
    expect_map_error(dir, "variable,modality,min,max,transform\nTemp,vitals,-5,45,log1p\n", "map.csv:2",
                     "transform log1p of 'Temp' needs a plausible range with min >= 0 (min is -5)");
    expect_map_error(dir, "variable,modality,transform\nALP,labs,log1p\n", "map.csv:2",
                     "transform log1p of 'ALP' needs a plausible range with min >= 0 (min is -inf)");
    expect_map_error(dir, "variable,modality\n# nothing\n", "map.csv", "the mapping lists no variable");
    /* A comment, a unit column and empty bounds are fine. */
    char path[1024];
    write_text(dir, "ok.csv",
               "# ranges\nvariable,modality,min,max,unit\nHR,vitals,,300,bpm\nAge,static,0,,y\n", path,
               sizeof path);
    FmVarMap map;
    FmError err;
    ck_assert_int_eq(fm_var_map_read(path, &map, &err), FM_OK);
    ck_assert_int_eq(map.n_entries, 2);
    ck_assert(isinf(map.entries[0].min) && map.entries[0].min < 0);
    ck_assert(isinf(map.entries[1].max) && map.entries[1].max > 0);
    fm_var_map_free(&map);
    snprintf(path, sizeof path, "%s/missing.csv", dir);
    ck_assert_int_eq(fm_var_map_read(path, &map, &err), FM_ERR_IO);
    fm_test_rmtree(dir);
}
END_TEST

/* ---- P12 through the pipeline ---- */

static FmStatus prepare_p12(const char *dirs, const char *outcomes, FmError *err) {
    char dbuf[2048], obuf[2048];
    snprintf(dbuf, sizeof dbuf, "%s", dirs);
    snprintf(obuf, sizeof obuf, "%s", outcomes);
    const char *d[8], *o[8];
    int nd = 0, no = 0;
    for (char *p = strtok(dbuf, ","); p && nd < 8; p = strtok(NULL, ","))
        d[nd++] = p;
    for (char *p = strtok(obuf, ","); p && no < 8; p = strtok(NULL, ","))
        o[no++] = p;
    FmPrepareOptions opt = fm_prepare_defaults();
    opt.p12_dirs = d;
    opt.n_p12_dirs = nd;
    opt.outcome_files = o;
    opt.n_outcome_files = no;
    FmCohort c;
    FmVarMap map;
    FmPrepareReport rep;
    fm_error_clear(err);
    FmStatus st = fm_prepare_run(&opt, &c, &map, &rep, err);
    if (st == FM_OK) {
        fm_cohort_free(&c);
        fm_var_map_free(&map);
        fm_report_free(&rep);
    } else {
        ck_assert_int_eq(c.N, 0);
        ck_assert_ptr_null(c.mod);
        ck_assert_int_eq(map.n_entries, 0);
        ck_assert_ptr_null(rep.obs);
    }
    return st;
}

#define BAD "tests/fixtures/p12_bad"

START_TEST(test_p12_bad_value) {
    FmError err;
    ck_assert_int_eq(prepare_p12(BAD "/comma_value", BAD "/Outcomes.txt", &err), FM_ERR_FORMAT);
    ck_assert_str_eq(err.where, BAD "/comma_value/132539.txt:17");
    ck_assert_str_eq(err.message, "column Value: expected a number, got \"1,5\"");
}
END_TEST

START_TEST(test_p12_bad_time_and_header) {
    FmError err;
    ck_assert_int_eq(prepare_p12(BAD "/bad_time", BAD "/Outcomes.txt", &err), FM_ERR_FORMAT);
    ck_assert_str_eq(err.where, BAD "/bad_time/200001.txt:4");
    ck_assert_str_eq(err.message, "column Time: expected a time HH:MM, got \"0:7x\"");
    ck_assert_int_eq(prepare_p12(BAD "/bad_header", BAD "/Outcomes.txt", &err), FM_ERR_FORMAT);
    ck_assert_str_eq(err.where, BAD "/bad_header/200002.txt:1");
    ck_assert_str_eq(err.message, "missing column 'Parameter' (header has: Time,Variable,Value)");
}
END_TEST

START_TEST(test_p12_no_outcome_and_missing_inputs) {
    FmError err;
    ck_assert_int_eq(prepare_p12(BAD "/no_outcome", BAD "/Outcomes.txt", &err), FM_ERR_FORMAT);
    ck_assert_str_eq(err.where, BAD "/no_outcome/200003.txt");
    ck_assert_str_eq(err.message, "record 200003 has no row in the outcome files");
    ck_assert_int_eq(prepare_p12(BAD "/no_such_folder", BAD "/Outcomes.txt", &err), FM_ERR_IO);
    ck_assert_str_eq(err.where, BAD "/no_such_folder");
    ck_assert_str_eq(err.message, "cannot open record folder: No such file or directory");
    ck_assert_int_eq(prepare_p12(BAD "/no_outcome", BAD "/no_such_outcomes.txt", &err), FM_ERR_IO);
    ck_assert_str_eq(err.where, BAD "/no_such_outcomes.txt");
    /* A folder without records. */
    ck_assert_int_eq(prepare_p12(BAD, BAD "/Outcomes.txt", &err), FM_ERR_FORMAT);
    ck_assert_str_eq(err.message, "no record files (<RecordID>.txt) in this folder");
}
END_TEST

START_TEST(test_p12_duplicate_and_mismatched_ids) {
    char dir[512], a[600], b[600], out[600], both[1300];
    fm_test_tmpdir(dir, sizeof dir);
    const char *rec = "Time,Parameter,Value\n00:00,RecordID,7\n00:00,Age,50\n01:00,HR,80\n";
    write_text(dir, "a/7.txt", rec, NULL, 0);
    write_text(dir, "b/7.txt", rec, NULL, 0);
    write_text(dir, "out.txt", "RecordID,Length_of_stay,In-hospital_death\n7,3,0\n8,4,1\n", out, sizeof out);
    snprintf(a, sizeof a, "%s/a", dir);
    snprintf(b, sizeof b, "%s/b", dir);
    snprintf(both, sizeof both, "%s,%s", a, b);
    FmError err;
    ck_assert_int_eq(prepare_p12(both, out, &err), FM_ERR_FORMAT);
    ck_assert_msg(ends_with(err.where, "/b/7.txt"), "%s", err.where);
    ck_assert_str_eq(err.message, "stay 7 was already read");
    /* RecordID must match a numeric file name. */
    write_text(dir, "c/8.txt", rec, NULL, 0);
    snprintf(a, sizeof a, "%s/c", dir);
    ck_assert_int_eq(prepare_p12(a, out, &err), FM_ERR_FORMAT);
    ck_assert_str_eq(err.message, "RecordID 7 does not match the file name");
    /* No RecordID line at all. */
    write_text(dir, "d/8.txt", "Time,Parameter,Value\n00:00,Age,50\n", NULL, 0);
    snprintf(a, sizeof a, "%s/d", dir);
    ck_assert_int_eq(prepare_p12(a, out, &err), FM_ERR_FORMAT);
    ck_assert_str_eq(err.message, "no RecordID line");
    /* A row with a missing field. */
    write_text(dir, "e/7.txt", "Time,Parameter,Value\n00:00,RecordID,7\n01:00,HR\n", NULL, 0);
    snprintf(a, sizeof a, "%s/e", dir);
    ck_assert_int_eq(prepare_p12(a, out, &err), FM_ERR_FORMAT);
    ck_assert_msg(ends_with(err.where, "/e/7.txt:3"), "%s", err.where);
    ck_assert_str_eq(err.message, "expected 3 fields (as in the header), got 2");
    fm_test_rmtree(dir);
}
END_TEST

/* ---- outcome and label files ---- */

static void expect_outcome_error(const char *dir, const char *text, const char *where_suffix,
                                 const char *message) {
    char path[1024];
    write_text(dir, "o.txt", text, path, sizeof path);
    FmLabelTable t;
    fm_labels_init(&t);
    FmError err;
    ck_assert_int_eq(fm_labels_read_p12_outcomes(&t, path, &err), FM_ERR_FORMAT);
    ck_assert_msg(ends_with(err.where, where_suffix), "where '%s', expected '...%s'", err.where,
                  where_suffix);
    ck_assert_msg(strstr(err.message, message) != NULL, "message '%s', expected '%s'", err.message, message);
    fm_labels_free(&t);
}

START_TEST(test_outcomes) {
    char dir[512], path[1024];
    fm_test_tmpdir(dir, sizeof dir);
    const char *head = "RecordID,SAPS-I,SOFA,Length_of_stay,Survival,In-hospital_death\n";
    char text[512];
    snprintf(text, sizeof text, "%s1,6,1,5,-1,0\n2,6,1,-1,3,1\n", head);
    write_text(dir, "ok.txt", text, path, sizeof path);
    FmLabelTable t;
    fm_labels_init(&t);
    FmError err;
    ck_assert_int_eq(fm_labels_read_p12_outcomes(&t, path, &err), FM_OK);
    ck_assert_uint_eq(t.n, 2);
    ck_assert_float_eq(t.mortality[0], 0);
    ck_assert_float_eq(t.mortality[1], 1);
    ck_assert_float_eq(t.los_days[0], 5);
    ck_assert(isnan(t.los_days[1]));
    ck_assert_int_eq(fm_labels_find(&t, 2), 1);
    ck_assert_int_eq(fm_labels_find(&t, 3), -1);
    /* The same stay in a second file. */
    ck_assert_int_eq(fm_labels_read_p12_outcomes(&t, path, &err), FM_ERR_FORMAT);
    ck_assert_msg(ends_with(err.where, "ok.txt:2"), "%s", err.where);
    ck_assert_msg(strstr(err.message, "stay 1 already has a row (") && ends_with(err.message, "ok.txt:2)"),
                  "%s", err.message);
    fm_labels_free(&t);
    snprintf(text, sizeof text, "%s1,6,1,5,-1,2\n", head);
    expect_outcome_error(dir, text, "o.txt:2", "column In-hospital_death: expected 0 or 1, got \"2\"");
    snprintf(text, sizeof text, "%s1,6,1,-5,-1,0\n", head);
    expect_outcome_error(dir, text, "o.txt:2",
                         "column Length_of_stay: expected a number of days (-1 = unknown), got \"-5\"");
    snprintf(text, sizeof text, "%s1,6,1,5,-1,0\n2,6,1,5,-1,0\n1,6,1,5,-1,0\n", head);
    expect_outcome_error(dir, text, "o.txt:4", "stay 1 already has a row");
    expect_outcome_error(dir, "RecordID,Length_of_stay\n1,5\n", "o.txt:1",
                         "missing column 'In-hospital_death'");
    snprintf(text, sizeof text, "%sx1,6,1,5,-1,0\n", head);
    expect_outcome_error(dir, text, "o.txt:2", "column RecordID: expected an integer stay id, got \"x1\"");
    fm_test_rmtree(dir);
}
END_TEST

START_TEST(test_labels_csv) {
    char dir[512], path[1024];
    fm_test_tmpdir(dir, sizeof dir);
    write_text(dir, "l.csv",
               "stay_id,mortality,los_days,hadm,phe_sepsis,phe_aki,readmit\n"
               "10,0,2.5,900,1,0,\n"
               "11,1,-1,901,0,1,1\n"
               "12,,,902,,,0\n",
               path, sizeof path);
    FmLabelCsvOptions o = fm_label_csv_defaults();
    const char *ignore[] = {"hadm"};
    o.ignore = ignore;
    o.n_ignore = 1;
    FmLabelTable t;
    fm_labels_init(&t);
    FmError err;
    ck_assert_int_eq(fm_labels_read_csv(&t, path, &o, &err), FM_OK);
    ck_assert_uint_eq(t.n, 3);
    ck_assert_int_eq(t.n_extra, 3);
    ck_assert_str_eq(t.extra_name[0], "phe_sepsis");
    ck_assert_str_eq(t.extra_name[2], "readmit");
    ck_assert_int_eq(t.extra_phenotype[0], 1);
    ck_assert_int_eq(t.extra_phenotype[1], 1);
    ck_assert_int_eq(t.extra_phenotype[2], 0);
    ck_assert_float_eq(t.los_days[0], 2.5f);
    ck_assert(isnan(t.los_days[1]) && isnan(t.los_days[2]) && isnan(t.mortality[2]));
    ck_assert(isnan(t.extra[0 * 3 + 2]));
    ck_assert_float_eq(t.extra[1 * 3 + 1], 1);
    fm_labels_free(&t);
    /* Without ignoring hadm, its values are not 0/1. */
    fm_labels_init(&t);
    o.n_ignore = 0;
    ck_assert_int_eq(fm_labels_read_csv(&t, path, &o, &err), FM_ERR_FORMAT);
    ck_assert_msg(ends_with(err.where, "l.csv:2"), "%s", err.where);
    ck_assert_msg(strstr(err.message, "column hadm: expected 0, 1 or empty, got \"900\"") &&
                      strstr(err.message, "--ignore-label-cols"),
                  "%s", err.message);
    fm_labels_free(&t);
    write_text(dir, "m.csv", "stay_id,mortality,los_days\n1,yes,3\n", path, sizeof path);
    fm_labels_init(&t);
    ck_assert_int_eq(fm_labels_read_csv(&t, path, &o, &err), FM_ERR_FORMAT);
    ck_assert_str_eq(err.message, "column mortality: expected 0, 1 or empty, got \"yes\"");
    fm_labels_free(&t);
    write_text(dir, "n.csv", "stay_id,mortality\n1,0\n", path, sizeof path);
    fm_labels_init(&t);
    ck_assert_int_eq(fm_labels_read_csv(&t, path, &o, &err), FM_ERR_FORMAT);
    ck_assert_str_eq(err.message, "missing column 'los_days' (header has: stay_id,mortality)");
    fm_labels_free(&t);
    fm_test_rmtree(dir);
}
END_TEST

/* ---- long CSV ---- */

static FmStatus prepare_long(const char *dir, const char *obs, const char *labels, FmError *err) {
    char o[1024], l[1024], m[1024];
    write_text(dir, "obs.csv", obs, o, sizeof o);
    write_text(dir, "labels.csv", labels, l, sizeof l);
    write_text(dir, "map.csv", "variable,modality,min,max\nHR,vitals,10,300\nAge,static,0,120\n", m,
               sizeof m);
    FmPrepareOptions opt = fm_prepare_defaults();
    opt.long_csv = o;
    const char *lf[] = {l};
    opt.label_files = lf;
    opt.n_label_files = 1;
    opt.mapping = m;
    FmCohort c;
    FmVarMap map;
    FmPrepareReport rep;
    fm_error_clear(err);
    FmStatus st = fm_prepare_run(&opt, &c, &map, &rep, err);
    if (st == FM_OK) {
        fm_cohort_free(&c);
        fm_var_map_free(&map);
        fm_report_free(&rep);
    }
    return st;
}

START_TEST(test_long_csv_errors) {
    char dir[512];
    fm_test_tmpdir(dir, sizeof dir);
    const char *labels = "stay_id,mortality,los_days\n1,0,3\n2,1,5\n";
    FmError err;
    ck_assert_int_eq(
        prepare_long(dir, "stay_id,time_h,variable,value\n1,0.5,HR,80\n2,1,HR,90\n", labels, &err), FM_OK);
    ck_assert_int_eq(prepare_long(dir, "stay_id,time_h,variable\n1,0.5,HR\n", labels, &err), FM_ERR_FORMAT);
    ck_assert_msg(ends_with(err.where, "obs.csv:1"), "%s", err.where);
    ck_assert_str_eq(err.message, "missing column 'value' (header has: stay_id,time_h,variable)");
    ck_assert_int_eq(
        prepare_long(dir, "stay_id,time_h,variable,value\n1,0.5,HR,80\n1,1,HR,8o\n", labels, &err),
        FM_ERR_FORMAT);
    ck_assert_msg(ends_with(err.where, "obs.csv:3"), "%s", err.where);
    ck_assert_str_eq(err.message, "column value: expected a number, got \"8o\"");
    ck_assert_int_eq(
        prepare_long(dir, "stay_id,time_h,variable,value\n1,0.5,HR,80\n9,1,HR,80\n", labels, &err),
        FM_ERR_FORMAT);
    ck_assert_msg(ends_with(err.where, "obs.csv:3"), "%s", err.where);
    ck_assert_str_eq(err.message, "stay 9 has no row in the labels file");
    ck_assert_int_eq(prepare_long(dir, "stay_id,time_h,variable,value\n1,01:30,HR,80\n", labels, &err),
                     FM_ERR_FORMAT);
    ck_assert_str_eq(err.message, "column time_h: expected a number of hours, got \"01:30\"");
    ck_assert_int_eq(prepare_long(dir, "stay_id,time_h,variable,value\n1.5,1,HR,80\n", labels, &err),
                     FM_ERR_FORMAT);
    ck_assert_str_eq(err.message, "column stay_id: expected an integer stay id, got \"1.5\"");
    ck_assert_int_eq(prepare_long(dir, "stay_id,time_h,variable,value\n1,1,HR,80\n",
                                  "stay_id,mortality,los_days\n1,0,3\n1,1,5\n", &err),
                     FM_ERR_FORMAT);
    ck_assert_msg(ends_with(err.where, "labels.csv:3"), "%s", err.where);
    fm_test_rmtree(dir);
}
END_TEST

static Suite *loaders_suite(void) {
    Suite *s = suite_create("loaders");
    TCase *tc = tcase_create("loaders");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_csv_stream_lines);
    tcase_add_test(tc, test_csv_stream_errors);
    tcase_add_test(tc, test_parse_number);
    tcase_add_test(tc, test_parse_time_and_int);
    tcase_add_test(tc, test_var_map_p12);
    tcase_add_test(tc, test_var_map_errors);
    tcase_add_test(tc, test_p12_bad_value);
    tcase_add_test(tc, test_p12_bad_time_and_header);
    tcase_add_test(tc, test_p12_no_outcome_and_missing_inputs);
    tcase_add_test(tc, test_p12_duplicate_and_mismatched_ids);
    tcase_add_test(tc, test_outcomes);
    tcase_add_test(tc, test_labels_csv);
    tcase_add_test(tc, test_long_csv_errors);
    suite_add_tcase(s, tc);
    return s;
}

int main(int argc, char **argv) {
    fm_blas_select_kernel(argv);
    return fm_test_run_suite(loaders_suite());
}
