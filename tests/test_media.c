/* Notes and image-feature HDF5 readers, PNG decoding and resizing, the image index. */
#include <math.h>
#include <png.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "preprocessing/event_h5.h"
#include "preprocessing/image_features_h5.h"
#include "preprocessing/image_index.h"
#include "preprocessing/notes_h5.h"
#include "preprocessing/png_image.h"
#include "src/alloc.h"
#include "src/atomic_file.h"
#include "src/blas_kernel.h"
#include "src/h5io.h"
#include "tests/support/testutil.h"

/* ------------------------------------------------------------------------------------------ */
/* Helpers.                                                                                   */

static void join(char *out, size_t cap, const char *dir, const char *name) {
    ck_assert_int_lt(snprintf(out, cap, "%s/%s", dir, name), (int)cap);
}

static void write_text(const char *path, const char *text) {
    FmError err;
    ck_assert_int_eq(fm_atomic_write_all(path, text, strlen(text), &err), FM_OK);
}

static long file_size(const char *path) {
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    return (long)st.st_size;
}

static unsigned char *read_bytes(const char *path, long *len) {
    *len = file_size(path);
    unsigned char *b = malloc((size_t)*len + 1);
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq((long)fread(b, 1, (size_t)*len, f), *len);
    fclose(f);
    return b;
}

static void write_bytes(const char *path, const unsigned char *b, long len) {
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq((long)fwrite(b, 1, (size_t)len, f), len);
    fclose(f);
}

/* Asserts the status, that err.where is `where` and that err.message contains `needle`. */
static void assert_error(FmStatus st, const FmError *err, FmStatus want, const char *where,
                         const char *needle) {
    ck_assert_msg(st == want, "status %d (%s), want %d; message: %s: %s", st, fm_status_name(st), want,
                  err->where, err->message);
    ck_assert_str_eq(err->where, where);
    ck_assert_msg(strstr(err->message, needle) != NULL, "message \"%s\" lacks \"%s\"", err->message, needle);
}

static int table_is_empty(const FmEventTable *t) {
    return t->n == 0 && t->dim == 0 && !t->stay_id && !t->time_h && !t->values;
}

/* A small event table with distinct, exactly representable values. */
static void make_table(FmEventTable *t, size_t n, int dim) {
    t->n = n;
    t->dim = dim;
    t->stay_id = fm_malloc_array(n, sizeof *t->stay_id);
    t->time_h = fm_malloc_array(n, sizeof *t->time_h);
    t->values = fm_malloc_array(n * (size_t)dim, sizeof *t->values);
    for (size_t i = 0; i < n; i++) {
        t->stay_id[i] = 5000000000LL + (int64_t)(i / 2); /* beyond 32 bits, two rows per stay */
        t->time_h[i] = -1.5f + 0.25f * (float)i;
        for (int d = 0; d < dim; d++)
            t->values[i * (size_t)dim + (size_t)d] = (float)(i * 100 + (size_t)d) / 8.0f;
    }
}

static void assert_tables_equal(const FmEventTable *a, const FmEventTable *b) {
    ck_assert_uint_eq(a->n, b->n);
    ck_assert_int_eq(a->dim, b->dim);
    for (size_t i = 0; i < a->n; i++) {
        ck_assert_int_eq(a->stay_id[i], b->stay_id[i]);
        ck_assert_float_eq(a->time_h[i], b->time_h[i]);
    }
    fm_assert_close(a->values, b->values, a->n * (size_t)a->dim, 0, 0, "values");
}

/* ------------------------------------------------------------------------------------------ */
/* Notes and image features (HDF5).                                                           */

START_TEST(test_notes_and_features_roundtrip) {
    char dir[256], path[512];
    fm_test_tmpdir(dir, sizeof dir);
    FmError err;
    FmEventTable t, back;
    make_table(&t, 7, 5);
    join(path, sizeof path, dir, "notes.h5");
    ck_assert_int_eq(fm_notes_write_h5(path, &t, &err), FM_OK);
    ck_assert_int_eq(fm_notes_read_h5(path, &back, &err), FM_OK);
    assert_tables_equal(&t, &back);
    fm_event_table_free(&back);
    /* The features reader wants /features, not /embedding. */
    ck_assert_int_eq(fm_image_features_read_h5(path, &back, &err), FM_ERR_FORMAT);
    ck_assert(table_is_empty(&back));
    char where[600];
    snprintf(where, sizeof where, "%s:/features", path);
    assert_error(FM_ERR_FORMAT, &err, FM_ERR_FORMAT, where, "missing dataset");
    join(path, sizeof path, dir, "features.h5");
    ck_assert_int_eq(fm_image_features_write_h5(path, &t, &err), FM_OK);
    ck_assert_int_eq(fm_image_features_read_h5(path, &back, &err), FM_OK);
    assert_tables_equal(&t, &back);
    fm_event_table_free(&back);
    /* An empty table (no notes at all) is a valid file. */
    FmEventTable empty = {.n = 0, .dim = 3, .stay_id = t.stay_id, .time_h = t.time_h, .values = t.values};
    join(path, sizeof path, dir, "empty.h5");
    ck_assert_int_eq(fm_notes_write_h5(path, &empty, &err), FM_OK);
    ck_assert_int_eq(fm_notes_read_h5(path, &back, &err), FM_OK);
    ck_assert_uint_eq(back.n, 0);
    ck_assert_int_eq(back.dim, 3);
    fm_event_table_free(&back);
    fm_event_table_free(&t);
    fm_test_rmtree(dir);
}
END_TEST

/* Files written by other tools: float64 times and vectors, int32 stay ids. */
START_TEST(test_notes_float64_and_int32) {
    char dir[256], path[512];
    fm_test_tmpdir(dir, sizeof dir);
    join(path, sizeof path, dir, "notes64.h5");
    FmError err;
    hid_t f;
    ck_assert_int_eq(fm_h5_create(path, &f, &err), FM_OK);
    const int32_t ids[3] = {11, 11, 42};
    const double times[3] = {0.5, 47.25, -3.0};
    const double emb[3 * 2] = {0.1, -0.2, 1e-3, 3.5, -7.0, 0.0};
    ck_assert_int_eq(fm_h5_write(f, "stay_id", FM_H5_I32, 1, (hsize_t[]){3}, ids, 0, &err), FM_OK);
    ck_assert_int_eq(fm_h5_write(f, "time_h", FM_H5_F64, 1, (hsize_t[]){3}, times, 1, &err), FM_OK);
    ck_assert_int_eq(fm_h5_write(f, "embedding", FM_H5_F64, 2, (hsize_t[]){3, 2}, emb, 1, &err), FM_OK);
    H5Fclose(f);
    FmEventTable t;
    ck_assert_int_eq(fm_notes_read_h5(path, &t, &err), FM_OK);
    ck_assert_uint_eq(t.n, 3);
    ck_assert_int_eq(t.dim, 2);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(t.stay_id[i], ids[i]);
        ck_assert_float_eq(t.time_h[i], (float)times[i]);
    }
    for (int i = 0; i < 6; i++)
        ck_assert_float_eq(t.values[i], (float)emb[i]);
    fm_event_table_free(&t);
    fm_test_rmtree(dir);
}
END_TEST

/* Writes a notes-like file whose datasets are described by the arguments (NULL name: omitted). */
typedef struct {
    const char *name;
    FmH5Type type;
    int rank;
    hsize_t dims[3];
} DsSpec;

static void write_spec_file(const char *path, const DsSpec *specs, int n_specs, double poison,
                            const char *poison_ds, size_t poison_at) {
    FmError err;
    hid_t f;
    ck_assert_int_eq(fm_h5_create(path, &f, &err), FM_OK);
    for (int s = 0; s < n_specs; s++) {
        size_t total = 1;
        for (int r = 0; r < specs[s].rank; r++)
            total *= specs[s].dims[r];
        double *buf = calloc(total ? total : 1, sizeof *buf);
        for (size_t i = 0; i < total; i++)
            buf[i] = (double)(i % 7);
        if (poison_ds && strcmp(poison_ds, specs[s].name) == 0) buf[poison_at] = poison;
        void *data = buf;
        int64_t *ibuf = NULL;
        if (specs[s].type == FM_H5_I64) {
            ibuf = calloc(total ? total : 1, sizeof *ibuf);
            for (size_t i = 0; i < total; i++)
                ibuf[i] = (int64_t)i;
            data = ibuf;
        } else {
            ck_assert_int_eq(specs[s].type, FM_H5_F64);
        }
        ck_assert_int_eq(
            fm_h5_write(f, specs[s].name, specs[s].type, specs[s].rank, specs[s].dims, data, 0, &err), FM_OK);
        free(buf);
        free(ibuf);
    }
    H5Fclose(f);
}

START_TEST(test_event_h5_malformed) {
    char dir[256], path[512], where[700];
    fm_test_tmpdir(dir, sizeof dir);
    join(path, sizeof path, dir, "notes.h5");
    FmError err;
    FmEventTable t;
    const DsSpec ids = {"stay_id", FM_H5_I64, 1, {4}}, times = {"time_h", FM_H5_F64, 1, {4}},
                 emb = {"embedding", FM_H5_F64, 2, {4, 3}};
    struct {
        DsSpec specs[3];
        int n;
        const char *ds; /* dataset named in the error */
        FmStatus code;
        const char *message; /* substring of the message */
    } cases[] = {
        {{ids, times, {"embedding", FM_H5_F64, 3, {4, 3, 2}}},
         3,
         "embedding",
         FM_ERR_FORMAT,
         "expected rank 2, got 3"},
        {{ids, times, {"embedding", FM_H5_F64, 1, {4}}},
         3,
         "embedding",
         FM_ERR_FORMAT,
         "expected rank 2, got 1"},
        {{ids, {"time_h", FM_H5_F64, 2, {4, 1}}, emb}, 3, "time_h", FM_ERR_FORMAT, "expected rank 1, got 2"},
        {{{"stay_id", FM_H5_F64, 1, {4}}, times, emb},
         3,
         "stay_id",
         FM_ERR_FORMAT,
         "expected integer values"},
        {{ids, {"time_h", FM_H5_I64, 1, {4}}, emb},
         3,
         "time_h",
         FM_ERR_FORMAT,
         "expected floating-point values"},
        {{ids, times, {"embedding", FM_H5_I64, 2, {4, 3}}},
         3,
         "embedding",
         FM_ERR_FORMAT,
         "expected floating-point values"},
        {{ids, {"time_h", FM_H5_F64, 1, {3}}, emb}, 3, "time_h", FM_ERR_FORMAT, "3 rows, but /stay_id has 4"},
        {{ids, times, {"embedding", FM_H5_F64, 2, {5, 3}}},
         3,
         "embedding",
         FM_ERR_FORMAT,
         "5 rows, but /stay_id has 4"},
        {{ids, times, {"embedding", FM_H5_F64, 2, {4, 0}}},
         3,
         "embedding",
         FM_ERR_FORMAT,
         "vectors have no columns"},
        {{ids, emb}, 2, "time_h", FM_ERR_FORMAT, "missing dataset"},
        {{times, emb}, 2, "stay_id", FM_ERR_FORMAT, "missing dataset"},
        {{ids, times}, 2, "embedding", FM_ERR_FORMAT, "missing dataset"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        write_spec_file(path, cases[c].specs, cases[c].n, 0, NULL, 0);
        memset(&t, 0xAB, sizeof t);
        FmStatus st = fm_notes_read_h5(path, &t, &err);
        snprintf(where, sizeof where, "%s:/%s", path, cases[c].ds);
        assert_error(st, &err, cases[c].code, where, cases[c].message);
        ck_assert(table_is_empty(&t));
    }
    /* Non-finite values: the row (and column) is named. */
    const DsSpec good[3] = {ids, times, emb};
    write_spec_file(path, good, 3, NAN, "embedding", 2 * 3 + 1);
    snprintf(where, sizeof where, "%s:/embedding", path);
    assert_error(fm_notes_read_h5(path, &t, &err), &err, FM_ERR_FORMAT, where,
                 "row 2, column 1: value is NaN");
    write_spec_file(path, good, 3, -INFINITY, "embedding", 11);
    assert_error(fm_notes_read_h5(path, &t, &err), &err, FM_ERR_FORMAT, where,
                 "row 3, column 2: value is infinite");
    write_spec_file(path, good, 3, 1e300, "embedding", 0); /* finite in float64, not in float32 */
    assert_error(fm_notes_read_h5(path, &t, &err), &err, FM_ERR_FORMAT, where,
                 "row 0, column 0: value is infinite");
    write_spec_file(path, good, 3, NAN, "time_h", 3);
    snprintf(where, sizeof where, "%s:/time_h", path);
    assert_error(fm_notes_read_h5(path, &t, &err), &err, FM_ERR_FORMAT, where, "row 3: value is NaN");
    ck_assert(table_is_empty(&t));
    /* Not HDF5, missing file. */
    write_text(path, "stay_id,time_h\n");
    assert_error(fm_notes_read_h5(path, &t, &err), &err, FM_ERR_FORMAT, path, "not an HDF5 file");
    join(path, sizeof path, dir, "absent.h5");
    assert_error(fm_image_features_read_h5(path, &t, &err), &err, FM_ERR_IO, path, "cannot open");
    ck_assert(table_is_empty(&t));
    fm_test_rmtree(dir);
}
END_TEST

/* Same table, same bytes (no timestamps in the file). */
START_TEST(test_event_h5_deterministic) {
    char dir[256], a[512], b[512];
    fm_test_tmpdir(dir, sizeof dir);
    join(a, sizeof a, dir, "a.h5");
    join(b, sizeof b, dir, "b.h5");
    FmError err;
    FmEventTable t;
    make_table(&t, 9, 4);
    ck_assert_int_eq(fm_notes_write_h5(a, &t, &err), FM_OK);
    sleep(1); /* a recorded modification time would differ */
    ck_assert_int_eq(fm_notes_write_h5(b, &t, &err), FM_OK);
    long la, lb;
    unsigned char *ba = read_bytes(a, &la), *bb = read_bytes(b, &lb);
    ck_assert_int_eq(la, lb);
    ck_assert_int_eq(memcmp(ba, bb, (size_t)la), 0);
    free(ba);
    free(bb);
    fm_event_table_free(&t);
    fm_test_rmtree(dir);
}
END_TEST

START_TEST(test_event_h5_alloc_failure) {
    char dir[256], path[512];
    fm_test_tmpdir(dir, sizeof dir);
    join(path, sizeof path, dir, "features.h5");
    FmError err;
    FmEventTable t;
    make_table(&t, 6, 3);
    ck_assert_int_eq(fm_image_features_write_h5(path, &t, &err), FM_OK);
    fm_event_table_free(&t);
    fm_alloc_fail_reset();
    ck_assert_int_eq(fm_image_features_read_h5(path, &t, &err), FM_OK);
    long calls = fm_alloc_calls();
    fm_event_table_free(&t);
    ck_assert_int_ge(calls, 3);
    for (long n = 1; n <= calls; n++) {
        fm_alloc_fail_after(n);
        FmStatus st = fm_image_features_read_h5(path, &t, &err);
        fm_alloc_fail_reset();
        ck_assert_int_eq(st, FM_ERR_NOMEM);
        ck_assert(table_is_empty(&t));
    }
    fm_test_rmtree(dir);
}
END_TEST

/* ------------------------------------------------------------------------------------------ */
/* PNG decoding.                                                                              */

/* A PNG to write with libpng directly: samples are raw values in the file's bit depth
 * (palette: indices), (h, w, channels). */
typedef struct {
    int w, h, color_type, depth, interlace;
    const uint16_t *samples;
    const png_color *palette;
    int n_palette;
    const png_byte *trns_alpha; /* palette transparency */
    int n_trns;
    const png_color_16 *trns_color; /* gray/RGB transparency */
} PngSpec;

static int spec_channels(int color_type) {
    switch (color_type) {
    case PNG_COLOR_TYPE_GRAY:
    case PNG_COLOR_TYPE_PALETTE: return 1;
    case PNG_COLOR_TYPE_GRAY_ALPHA: return 2;
    case PNG_COLOR_TYPE_RGB: return 3;
    default: return 4;
    }
}

static void write_png_spec(const char *path, const PngSpec *s) {
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    ck_assert(png && info);
    if (setjmp(png_jmpbuf(png))) ck_abort_msg("libpng failed writing the test image %s", path);
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)s->w, (png_uint_32)s->h, s->depth, s->color_type,
                 s->interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    if (s->palette) png_set_PLTE(png, info, s->palette, s->n_palette);
    if (s->trns_alpha || s->trns_color) png_set_tRNS(png, info, s->trns_alpha, s->n_trns, s->trns_color);
    png_write_info(png, info);
    int ch = spec_channels(s->color_type);
    size_t rowbytes = ((size_t)s->w * (size_t)ch * (size_t)s->depth + 7) / 8;
    png_bytep *rows = calloc((size_t)s->h, sizeof *rows);
    for (int y = 0; y < s->h; y++) {
        rows[y] = calloc(rowbytes, 1);
        for (int i = 0; i < s->w * ch; i++) {
            unsigned v = s->samples[(size_t)y * (size_t)(s->w * ch) + (size_t)i];
            ck_assert_uint_lt(v, 1u << s->depth);
            if (s->depth == 16) {
                rows[y][2 * i] = (png_byte)(v >> 8);
                rows[y][2 * i + 1] = (png_byte)(v & 0xFF);
            } else if (s->depth == 8) {
                rows[y][i] = (png_byte)v;
            } else { /* packed, leftmost sample in the high bits */
                int per_byte = 8 / s->depth, slot = i % per_byte;
                rows[y][i / per_byte] |= (png_byte)(v << (8 - s->depth * (slot + 1)));
            }
        }
    }
    png_write_image(png, rows);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    fclose(f);
    for (int y = 0; y < s->h; y++)
        free(rows[y]);
    free(rows);
}

/* The gray value the header's rules give for pixel p of spec s. */
static float expected_gray(const PngSpec *s, int p) {
    int ch = spec_channels(s->color_type);
    const uint16_t *v = s->samples + (size_t)p * (size_t)ch;
    double maxv = (double)((1u << s->depth) - 1);
    switch (s->color_type) {
    case PNG_COLOR_TYPE_GRAY:
        if (s->trns_color && v[0] == s->trns_color->gray) return 0.0f;
        return (float)(v[0] / maxv);
    case PNG_COLOR_TYPE_GRAY_ALPHA: return (float)(v[0] / maxv * (v[1] / maxv));
    case PNG_COLOR_TYPE_RGB:
        if (s->trns_color && v[0] == s->trns_color->red && v[1] == s->trns_color->green &&
            v[2] == s->trns_color->blue)
            return 0.0f;
        return (float)((0.299 * v[0] + 0.587 * v[1] + 0.114 * v[2]) / maxv);
    case PNG_COLOR_TYPE_RGB_ALPHA:
        return (float)((0.299 * v[0] + 0.587 * v[1] + 0.114 * v[2]) / maxv * (v[3] / maxv));
    default: {
        const png_color *c = &s->palette[v[0]];
        double a = v[0] < s->n_trns ? s->trns_alpha[v[0]] / 255.0 : 1.0;
        return (float)((0.299 * c->red + 0.587 * c->green + 0.114 * c->blue) / 255.0 * a);
    }
    }
}

/* Writes spec s, decodes it and compares every pixel with expected_gray. */
static void check_png_spec(const char *dir, PngSpec *s, const char *label) {
    char path[512];
    join(path, sizeof path, dir, "t.png");
    write_png_spec(path, s);
    FmError err;
    float *px;
    int w, h;
    FmStatus st = fm_png_read_gray(path, &px, &w, &h, &err);
    ck_assert_msg(st == FM_OK, "%s: %s", label, err.message);
    ck_assert_int_eq(w, s->w);
    ck_assert_int_eq(h, s->h);
    float *want = malloc(sizeof(float) * (size_t)(w * h));
    for (int p = 0; p < w * h; p++)
        want[p] = expected_gray(s, p);
    /* The decoder evaluates the same double expressions: exact equality (observed error 0). */
    fm_assert_close(px, want, (size_t)(w * h), 0, 0, label);
    free(want);
    fm_free(px);
}

/* Every colour type and bit depth the standard allows, plain and interlaced, on a 7 x 5 image
 * (odd sizes so every Adam7 pass has partial blocks), with random samples. */
START_TEST(test_png_all_formats) {
    char dir[256];
    fm_test_tmpdir(dir, sizeof dir);
    FmRng rng;
    fm_rng_seed(&rng, 99);
    const struct {
        int color_type, depth;
    } formats[] = {
        {PNG_COLOR_TYPE_GRAY, 1},        {PNG_COLOR_TYPE_GRAY, 2},       {PNG_COLOR_TYPE_GRAY, 4},
        {PNG_COLOR_TYPE_GRAY, 8},        {PNG_COLOR_TYPE_GRAY, 16},      {PNG_COLOR_TYPE_GRAY_ALPHA, 8},
        {PNG_COLOR_TYPE_GRAY_ALPHA, 16}, {PNG_COLOR_TYPE_RGB, 8},        {PNG_COLOR_TYPE_RGB, 16},
        {PNG_COLOR_TYPE_RGB_ALPHA, 8},   {PNG_COLOR_TYPE_RGB_ALPHA, 16}, {PNG_COLOR_TYPE_PALETTE, 1},
        {PNG_COLOR_TYPE_PALETTE, 2},     {PNG_COLOR_TYPE_PALETTE, 4},    {PNG_COLOR_TYPE_PALETTE, 8},
    };
    png_color palette[256];
    png_byte alpha[256];
    for (int i = 0; i < 256; i++) {
        palette[i].red = (png_byte)fm_rng_below(&rng, 256);
        palette[i].green = (png_byte)fm_rng_below(&rng, 256);
        palette[i].blue = (png_byte)fm_rng_below(&rng, 256);
        alpha[i] = (png_byte)fm_rng_below(&rng, 256);
    }
    uint16_t samples[7 * 5 * 4];
    char label[96];
    for (size_t f = 0; f < sizeof formats / sizeof *formats; f++) {
        for (int interlace = 0; interlace <= 1; interlace++) {
            for (int with_trns = 0; with_trns <= 1; with_trns++) {
                int ct = formats[f].color_type, depth = formats[f].depth;
                int ch = spec_channels(ct);
                int levels = 1 << depth; /* palette: indices */
                for (int i = 0; i < 7 * 5 * ch; i++)
                    samples[i] = (uint16_t)fm_rng_below(&rng, (uint64_t)levels);
                samples[0] = (uint16_t)(levels - 1); /* the extremes are always present */
                samples[ch] = 0;
                PngSpec s = {.w = 7,
                             .h = 5,
                             .color_type = ct,
                             .depth = depth,
                             .interlace = interlace,
                             .samples = samples};
                png_color_16 trns = {0};
                if (ct == PNG_COLOR_TYPE_PALETTE) {
                    s.palette = palette;
                    s.n_palette = 1 << depth;
                    if (with_trns) {
                        s.trns_alpha = alpha;
                        s.n_trns = s.n_palette > 1 ? s.n_palette - 1 : 1; /* the last entry stays opaque */
                    }
                } else if (with_trns && (ct == PNG_COLOR_TYPE_GRAY || ct == PNG_COLOR_TYPE_RGB)) {
                    /* Make the transparent colour the one of pixel 2, so it occurs. */
                    trns.gray = samples[2 * ch];
                    if (ct == PNG_COLOR_TYPE_RGB) {
                        trns.red = samples[2 * ch];
                        trns.green = samples[2 * ch + 1];
                        trns.blue = samples[2 * ch + 2];
                    }
                    s.trns_color = &trns;
                } else if (with_trns) {
                    continue; /* formats with an alpha channel cannot have tRNS */
                }
                snprintf(label, sizeof label, "color %d depth %d interlace %d trns %d", ct, depth, interlace,
                         with_trns);
                check_png_spec(dir, &s, label);
            }
        }
    }
    fm_test_rmtree(dir);
}
END_TEST

/* Hand-checked values: 2-bit gray is 0, 1/3, 2/3, 1; a half-transparent white RGBA pixel on
 * black is 128/255 gray; pure red is 0.299. */
START_TEST(test_png_known_values) {
    char dir[256];
    fm_test_tmpdir(dir, sizeof dir);
    const uint16_t gray2[4] = {0, 1, 2, 3};
    PngSpec s = {.w = 4, .h = 1, .color_type = PNG_COLOR_TYPE_GRAY, .depth = 2, .samples = gray2};
    char path[512];
    join(path, sizeof path, dir, "g2.png");
    write_png_spec(path, &s);
    FmError err;
    float *px;
    int w, h;
    ck_assert_int_eq(fm_png_read_gray(path, &px, &w, &h, &err), FM_OK);
    const float want_g2[4] = {0.0f, 1.0f / 3.0f, 2.0f / 3.0f, 1.0f};
    fm_assert_close(px, want_g2, 4, 0, 0, "2-bit gray");
    fm_free(px);
    const uint16_t rgba[3 * 4] = {255, 255, 255, 128, 255, 0, 0, 255, 0, 0, 255, 0};
    PngSpec r = {.w = 3, .h = 1, .color_type = PNG_COLOR_TYPE_RGB_ALPHA, .depth = 8, .samples = rgba};
    join(path, sizeof path, dir, "rgba.png");
    write_png_spec(path, &r);
    ck_assert_int_eq(fm_png_read_gray(path, &px, &w, &h, &err), FM_OK);
    const float want_rgba[3] = {128.0f / 255.0f, 0.299f, 0.0f};
    fm_assert_close(px, want_rgba, 3, 1e-7, 0, "rgba"); /* observed 0 */
    fm_free(px);
    const uint16_t g16[2] = {65535, 32768};
    PngSpec g = {
        .w = 1, .h = 2, .color_type = PNG_COLOR_TYPE_GRAY, .depth = 16, .samples = g16, .interlace = 1};
    join(path, sizeof path, dir, "g16.png");
    write_png_spec(path, &g);
    ck_assert_int_eq(fm_png_read_gray(path, &px, &w, &h, &err), FM_OK);
    ck_assert_int_eq(w, 1);
    ck_assert_int_eq(h, 2);
    ck_assert_float_eq(px[0], 1.0f);
    ck_assert_float_eq(px[1], (float)(32768.0 / 65535.0));
    fm_free(px);
    fm_test_rmtree(dir);
}
END_TEST

/* A valid 8-bit gray PNG of w x h with a gradient, written by fm_png_write_gray8. */
static void write_gradient_png(const char *path, int w, int h) {
    uint8_t *p = malloc((size_t)(w * h));
    for (int i = 0; i < w * h; i++)
        p[i] = (uint8_t)((i * 37) % 256);
    FmError err;
    ck_assert_int_eq(fm_png_write_gray8(path, p, w, h, &err), FM_OK);
    free(p);
}

START_TEST(test_png_write_roundtrip) {
    char dir[256], path[512];
    fm_test_tmpdir(dir, sizeof dir);
    join(path, sizeof path, dir, "w.png");
    const int w = 13, h = 6;
    write_gradient_png(path, w, h);
    FmError err;
    float *px;
    int gw, gh;
    ck_assert_int_eq(fm_png_read_gray(path, &px, &gw, &gh, &err), FM_OK);
    ck_assert_int_eq(gw, w);
    ck_assert_int_eq(gh, h);
    for (int i = 0; i < w * h; i++)
        ck_assert_float_eq(px[i], (float)(((i * 37) % 256) / 255.0));
    fm_free(px);
    fm_test_rmtree(dir);
}
END_TEST

START_TEST(test_png_malformed) {
    char dir[256], good[512], bad[512];
    fm_test_tmpdir(dir, sizeof dir);
    join(good, sizeof good, dir, "good.png");
    join(bad, sizeof bad, dir, "bad.png");
    write_gradient_png(good, 40, 30);
    FmError err;
    float *px = (float *)1;
    int w = -1, h = -1;
    /* Not a PNG: text, an empty file, a JPEG signature. */
    write_text(bad, "stay_id,time_h,path\n");
    assert_error(fm_png_read_gray(bad, &px, &w, &h, &err), &err, FM_ERR_FORMAT, bad, "not a PNG file");
    ck_assert_ptr_null(px);
    ck_assert_int_eq(w, 0);
    write_bytes(bad, (const unsigned char *)"", 0);
    assert_error(fm_png_read_gray(bad, &px, &w, &h, &err), &err, FM_ERR_FORMAT, bad, "not a PNG file");
    write_bytes(bad, (const unsigned char *)"\xFF\xD8\xFF\xE0\0\x10JFIF", 10);
    assert_error(fm_png_read_gray(bad, &px, &w, &h, &err), &err, FM_ERR_FORMAT, bad, "not a PNG file");
    /* Truncated at several points: after the signature, inside IHDR, inside IDAT, inside IEND. */
    long len;
    unsigned char *bytes = read_bytes(good, &len);
    const long cuts[] = {8, 20, 33 + 20, len / 2, len - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++) {
        write_bytes(bad, bytes, cuts[i]);
        px = (float *)1;
        assert_error(fm_png_read_gray(bad, &px, &w, &h, &err), &err, FM_ERR_FORMAT, bad,
                     "truncated PNG file");
        ck_assert_ptr_null(px);
    }
    /* Corrupt: a flipped byte in the IDAT payload breaks its CRC; a bad IHDR CRC. */
    unsigned char *copy = malloc((size_t)len);
    memcpy(copy, bytes, (size_t)len);
    unsigned char *idat = NULL;
    for (long i = 0; i + 4 <= len && !idat; i++)
        if (memcmp(copy + i, "IDAT", 4) == 0) idat = copy + i;
    ck_assert_ptr_nonnull(idat);
    idat[6] ^= 0x5A;
    write_bytes(bad, copy, len);
    assert_error(fm_png_read_gray(bad, &px, &w, &h, &err), &err, FM_ERR_FORMAT, bad,
                 "corrupt PNG file: IDAT");
    memcpy(copy, bytes, (size_t)len);
    copy[8 + 8 + 4] = 0x7F; /* IHDR width's top byte: the CRC no longer matches */
    write_bytes(bad, copy, len);
    assert_error(fm_png_read_gray(bad, &px, &w, &h, &err), &err, FM_ERR_FORMAT, bad, "corrupt PNG file");
    free(copy);
    free(bytes);
    /* Missing file. */
    join(bad, sizeof bad, dir, "absent.png");
    assert_error(fm_png_read_gray(bad, &px, &w, &h, &err), &err, FM_ERR_IO, bad, "cannot open");
    fm_test_rmtree(dir);
}
END_TEST

/* Every allocation, ours and libpng's, fails in turn on a 16-bit interlaced RGBA image. */
START_TEST(test_png_alloc_failure) {
    char dir[256], path[512];
    fm_test_tmpdir(dir, sizeof dir);
    join(path, sizeof path, dir, "a.png");
    uint16_t samples[9 * 6 * 4];
    for (int i = 0; i < 9 * 6 * 4; i++)
        samples[i] = (uint16_t)(i * 997 % 65536);
    PngSpec s = {.w = 9,
                 .h = 6,
                 .color_type = PNG_COLOR_TYPE_RGB_ALPHA,
                 .depth = 16,
                 .interlace = 1,
                 .samples = samples};
    write_png_spec(path, &s);
    FmError err;
    float *px;
    int w, h;
    fm_alloc_fail_reset();
    ck_assert_int_eq(fm_png_read_gray(path, &px, &w, &h, &err), FM_OK);
    long calls = fm_alloc_calls();
    fm_free(px);
    ck_assert_int_ge(calls, 5); /* libpng's structures, zlib, rows, pixels */
    for (long n = 1; n <= calls; n++) {
        fm_alloc_fail_after(n);
        px = (float *)1;
        FmStatus st = fm_png_read_gray(path, &px, &w, &h, &err);
        fm_alloc_fail_reset();
        ck_assert_msg(st == FM_ERR_NOMEM, "allocation %ld: status %d: %s", n, st, err.message);
        ck_assert_ptr_null(px);
    }
    /* The encoder too. */
    join(path, sizeof path, dir, "b.png");
    uint8_t g[12] = {0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110};
    ck_assert_int_eq(fm_png_write_gray8(path, g, 4, 3, &err), FM_OK);
    calls = fm_alloc_calls();
    for (long n = 1; n <= calls; n++) {
        fm_alloc_fail_after(n);
        FmStatus st = fm_png_write_gray8(path, g, 4, 3, &err);
        fm_alloc_fail_reset();
        ck_assert_int_eq(st, FM_ERR_NOMEM);
    }
    fm_test_rmtree(dir);
}
END_TEST

/* ------------------------------------------------------------------------------------------ */
/* The two real chest X-rays.                                                                 */

/* Constants from tests/fixtures/media_reference.py (PIL decoding, numpy statistics, exact
 * area-overlap matrices in numpy, torch bilinear interpolation), printed with 9 decimals. */
typedef struct {
    const char *name;
    double min, max, mean, std;
    int px_rc[4][2];
    double px[4];
    double area_mean[3];   /* S = 64, 48, 37 */
    double area_val[3][4]; /* at [0,0], [S/2,S/3], [S-1,S-1], [5,S-2] */
    double up_val[4];      /* bilinear 700 x 700 at [0,0], [1,350], [350,351], [699,698] */
} CxrRef;

static const CxrRef CXR[2] = {
    {"00000001_000.png",
     0.0,
     1.0,
     0.502494752,
     0.264145854,
     {{0, 0}, {100, 200}, {256, 256}, {300, 77}},
     {0.776470588, 0.329411765, 0.776470588, 0.482352941},
     {0.502494752, 0.502494752, 0.502494752},
     {{0.524754902, 0.356004902, 0.015686275, 0.038419118},
      {0.384076287, 0.389077819, 0.042796415, 0.346614583},
      {0.275507160, 0.374997427, 0.073500046, 0.500142251}},
     {0.776470588, 0.611822937, 0.778812325, 0.0}},
    {"00027426_000.png",
     0.0,
     0.945098039,
     0.499579920,
     0.266282045,
     {{0, 0}, {100, 200}, {256, 256}, {300, 77}},
     {0.725490196, 0.352941176, 0.576470588, 0.752941176},
     {0.499579920, 0.499579920, 0.499579920},
     {{0.128921569, 0.155024510, 0.0, 0.0},
      {0.077688419, 0.142700674, 0.000306373, 0.040464154},
      {0.048437231, 0.178204391, 0.007856257, 0.349704129}},
     {0.725490196, 0.843934246, 0.573704554, 0.0}},
};

START_TEST(test_cxr_samples) {
    char path[1024];
    for (int k = 0; k < 2; k++) {
        const CxrRef *ref = &CXR[k];
        snprintf(path, sizeof path, "%s/data/cxr_samples/%s", fm_test_shared_dir(), ref->name);
        FmError err;
        float *px;
        int w, h;
        ck_assert_msg(fm_png_read_gray(path, &px, &w, &h, &err) == FM_OK, "%s: %s", path, err.message);
        ck_assert_int_eq(w, 512);
        ck_assert_int_eq(h, 512);
        double lo = 1, hi = 0, sum = 0, sq = 0;
        for (int i = 0; i < w * h; i++) {
            lo = fmin(lo, px[i]);
            hi = fmax(hi, px[i]);
            sum += px[i];
        }
        double mean = sum / (w * h);
        for (int i = 0; i < w * h; i++)
            sq += (px[i] - mean) * (px[i] - mean);
        /* The references are printed with 9 decimals; each float pixel carries up to 3e-8. */
        ck_assert_double_eq_tol(lo, ref->min, 1e-8);
        ck_assert_double_eq_tol(hi, ref->max, 1e-7);
        ck_assert_double_eq_tol(mean, ref->mean, 5e-8);              /* observed 1.2e-8 */
        ck_assert_double_eq_tol(sqrt(sq / (w * h)), ref->std, 5e-8); /* observed 4e-9 */
        for (int i = 0; i < 4; i++)
            ck_assert_double_eq_tol(px[ref->px_rc[i][0] * w + ref->px_rc[i][1]], ref->px[i],
                                    5e-8); /* float rounding */
        const int sizes[3] = {64, 48, 37};
        for (int s = 0; s < 3; s++) {
            int S = sizes[s];
            float *dst = malloc(sizeof(float) * (size_t)(S * S));
            fm_image_resize(px, w, h, dst, S);
            double dsum = 0;
            for (int i = 0; i < S * S; i++)
                dsum += dst[i];
            /* Area averaging keeps the mean: observed difference 1.2e-8 (float pixels). */
            ck_assert_double_eq_tol(dsum / (S * S), ref->area_mean[s], 2e-7);
            const int rc[4][2] = {{0, 0}, {S / 2, S / 3}, {S - 1, S - 1}, {5, S - 2}};
            for (int i = 0; i < 4; i++)
                ck_assert_double_eq_tol(dst[rc[i][0] * S + rc[i][1]], ref->area_val[s][i],
                                        1e-7); /* observed 4e-8 */
            free(dst);
        }
        const int S = 700;
        float *up = malloc(sizeof(float) * (size_t)(S * S));
        fm_image_resize(px, w, h, up, S);
        const int rc[4][2] = {{0, 0}, {1, 350}, {350, 351}, {699, 698}};
        for (int i = 0; i < 4; i++)
            ck_assert_double_eq_tol(up[rc[i][0] * S + rc[i][1]], ref->up_val[i], 1e-7); /* observed 5e-8 */
        free(up);
        fm_free(px);
    }
}
END_TEST

/* ------------------------------------------------------------------------------------------ */
/* Resizing on known patterns.                                                                */

START_TEST(test_resize_known_patterns) {
    /* Identity. */
    float src[64], dst[64];
    for (int i = 0; i < 16; i++)
        src[i] = (float)i;
    fm_image_resize(src, 4, 4, dst, 4);
    fm_assert_close(dst, src, 16, 0, 0, "identity");
    /* 4x4 -> 2x2: block means. */
    fm_image_resize(src, 4, 4, dst, 2);
    const float blocks[4] = {(0 + 1 + 4 + 5) / 4.0f, (2 + 3 + 6 + 7) / 4.0f, (8 + 9 + 12 + 13) / 4.0f,
                             (10 + 11 + 14 + 15) / 4.0f};
    fm_assert_close(dst, blocks, 4, 0, 0, "block means");
    /* 3x3 -> 2x2: output 0 covers source [0, 1.5): weights (2/3, 1/3, 0); output 1: (0, 1/3, 2/3). */
    const float s3[9] = {0, 3, 6, 9, 12, 15, 18, 21, 24};
    fm_image_resize(s3, 3, 3, dst, 2);
    const double wt[2][3] = {{2.0 / 3, 1.0 / 3, 0}, {0, 1.0 / 3, 2.0 / 3}};
    float want[4];
    for (int y = 0; y < 2; y++)
        for (int x = 0; x < 2; x++) {
            double v = 0;
            for (int j = 0; j < 3; j++)
                for (int i = 0; i < 3; i++)
                    v += wt[y][j] * wt[x][i] * s3[j * 3 + i];
            want[y * 2 + x] = (float)v;
        }
    fm_assert_close(dst, want, 4, 1e-6, 0, "3 -> 2 area"); /* observed 0 */
    /* By hand: value = 9 row + 3 col; the weights put outputs at coordinates 1/3 and 5/3. */
    const float by_hand[4] = {4, 8, 16, 20};
    fm_assert_close(dst, by_hand, 4, 1e-5, 0, "3 -> 2 by hand"); /* observed 0 */
    /* 2x2 -> 4x4 bilinear: source coordinates -0.25 (clamped), 0.25, 0.75, 1.25 (clamped). */
    const float s2[4] = {0, 4, 8, 12};
    fm_image_resize(s2, 2, 2, dst, 4);
    const float row_w[4][2] = {{1, 0}, {0.75f, 0.25f}, {0.25f, 0.75f}, {0, 1}};
    float want16[16];
    for (int y = 0; y < 4; y++)
        for (int x = 0; x < 4; x++) {
            float top = row_w[x][0] * s2[0] + row_w[x][1] * s2[1];
            float bottom = row_w[x][0] * s2[2] + row_w[x][1] * s2[3];
            want16[y * 4 + x] = row_w[y][0] * top + row_w[y][1] * bottom;
        }
    fm_assert_close(dst, want16, 16, 0, 0, "2 -> 4 bilinear");
    /* Mixed: 8 wide x 2 high -> 4 x 4 (x shrinks by 2, y enlarges by 2). */
    float s82[16];
    for (int i = 0; i < 16; i++)
        s82[i] = (float)(i % 8) + 100.0f * (float)(i / 8);
    fm_image_resize(s82, 8, 2, dst, 4);
    for (int y = 0; y < 4; y++)
        for (int x = 0; x < 4; x++) {
            float col = (float)(2 * x) + 0.5f;   /* mean of columns 2x, 2x+1 */
            float rowv = 100.0f * (row_w[y][1]); /* bilinear between rows 0 and 1 */
            want16[y * 4 + x] = col + rowv;
        }
    fm_assert_close(dst, want16, 16, 1e-5, 0, "mixed"); /* observed 0 */
    /* A 1x1 source gives a constant image of any size; any image shrunk to 1x1 gives its mean. */
    const float one = 0.625f;
    fm_image_resize(&one, 1, 1, dst, 5);
    for (int i = 0; i < 25; i++)
        ck_assert_float_eq(dst[i], one);
    fm_image_resize(src, 4, 4, dst, 1);
    ck_assert_float_eq(dst[0], 7.5f);
}
END_TEST

/* Constants stay constant; area shrinking keeps the mean; outputs stay within the input range. */
START_TEST(test_resize_invariants) {
    FmRng rng;
    fm_rng_seed(&rng, 5);
    const int shapes[][3] = {{37, 23, 10}, {23, 37, 9}, {13, 7, 20}, {7, 13, 5}, {5, 5, 11}, {64, 3, 16}};
    for (size_t k = 0; k < sizeof shapes / sizeof *shapes; k++) {
        int w = shapes[k][0], h = shapes[k][1], S = shapes[k][2];
        float *src = malloc(sizeof(float) * (size_t)(w * h)), *dst = malloc(sizeof(float) * (size_t)(S * S));
        for (int i = 0; i < w * h; i++)
            src[i] = 0.3f;
        fm_image_resize(src, w, h, dst, S);
        for (int i = 0; i < S * S; i++)
            ck_assert_float_eq_tol(dst[i], 0.3f, 1e-7f); /* observed 0 */
        fm_fill_uniform(&rng, src, (size_t)(w * h), 0.0f, 1.0f);
        double smean = 0;
        for (int i = 0; i < w * h; i++)
            smean += src[i];
        smean /= w * h;
        fm_image_resize(src, w, h, dst, S);
        double dmean = 0;
        for (int i = 0; i < S * S; i++) {
            ck_assert(dst[i] >= 0.0f && dst[i] <= 1.0f);
            dmean += dst[i];
        }
        dmean /= S * S;
        if (S < w && S < h) ck_assert_double_eq_tol(dmean, smean, 1e-7); /* observed 1.5e-9 */
        free(src);
        free(dst);
    }
}
END_TEST

/* ------------------------------------------------------------------------------------------ */
/* The image index.                                                                           */

/* Writes images/a.png (4x4 gradient, 8-bit gray), images/b.png (2x2 RGB 16-bit, interlaced). */
static void write_index_images(const char *dir) {
    char path[512];
    snprintf(path, sizeof path, "%s/img", dir);
    ck_assert_int_eq(mkdir(path, 0755), 0);
    uint8_t a[16];
    for (int i = 0; i < 16; i++)
        a[i] = (uint8_t)(i * 17);
    FmError err;
    join(path, sizeof path, dir, "img/a.png");
    ck_assert_int_eq(fm_png_write_gray8(path, a, 4, 4, &err), FM_OK);
    const uint16_t rgb[2 * 2 * 3] = {65535, 65535, 65535, 0, 0, 0, 65535, 0, 0, 0, 0, 65535};
    PngSpec s = {
        .w = 2, .h = 2, .color_type = PNG_COLOR_TYPE_RGB, .depth = 16, .interlace = 1, .samples = rgb};
    join(path, sizeof path, dir, "img/b.png");
    write_png_spec(path, &s);
}

START_TEST(test_image_index_read) {
    char dir[256], csv[512], abs_b[512], text[2048];
    fm_test_tmpdir(dir, sizeof dir);
    write_index_images(dir);
    join(abs_b, sizeof abs_b, dir, "img/b.png");
    /* Byte-order mark, columns reordered, an extra column, CRLF, a quoted path, a blank line,
     * an absolute path, no final line end. */
    snprintf(text, sizeof text,
             "\xEF\xBB\xBFpath,note,stay_id,time_h\r\n"
             "img/a.png,x,101,0.5\r\n"
             "\r\n"
             "\"img/b.png\",\"y, z\",102,-2\r\n"
             "%s,,5000000000,47.75",
             abs_b);
    join(csv, sizeof csv, dir, "index.csv");
    write_text(csv, text);
    FmError err;
    FmEventTable t;
    ck_assert_int_eq(fm_image_index_read(csv, 2, &t, &err), FM_OK);
    ck_assert_uint_eq(t.n, 3);
    ck_assert_int_eq(t.dim, 4);
    const int64_t ids[3] = {101, 102, 5000000000LL};
    const float times[3] = {0.5f, -2.0f, 47.75f};
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(t.stay_id[i], ids[i]);
        ck_assert_float_eq(t.time_h[i], times[i]);
    }
    /* a.png 4x4 -> 2x2 block means of 17 * index / 255. */
    float want_a[4];
    const int tl[4] = {0, 2, 8, 10};
    for (int k = 0; k < 4; k++)
        want_a[k] = (float)((17.0 * (tl[k] + tl[k] + 1 + tl[k] + 4 + tl[k] + 5) / 4.0) / 255.0);
    fm_assert_close(t.values, want_a, 4, 1e-7, 0, "a.png"); /* observed 6e-8, one float ulp */
    /* b.png stays 2x2: white, black, red (0.299), blue (0.114). */
    const float want_b[4] = {1.0f, 0.0f, 0.299f, 0.114f};
    fm_assert_close(t.values + 4, want_b, 4, 1e-7, 0, "b.png");
    fm_assert_close(t.values + 8, want_b, 4, 1e-7, 0, "b.png absolute");
    fm_event_table_free(&t);
    /* Header only: no images, not an error. */
    write_text(csv, "stay_id,time_h,path\n");
    ck_assert_int_eq(fm_image_index_read(csv, 8, &t, &err), FM_OK);
    ck_assert_uint_eq(t.n, 0);
    ck_assert_int_eq(t.dim, 64);
    fm_event_table_free(&t);
    fm_test_rmtree(dir);
}
END_TEST

START_TEST(test_image_index_malformed) {
    char dir[256], csv[512], where[600], needle[700], text[1024];
    fm_test_tmpdir(dir, sizeof dir);
    write_index_images(dir);
    join(csv, sizeof csv, dir, "index.csv");
    char notpng[512], trunc[512];
    join(notpng, sizeof notpng, dir, "img/c.png");
    write_text(notpng, "hello\n");
    join(trunc, sizeof trunc, dir, "img/d.png");
    long len;
    char a_path[512];
    join(a_path, sizeof a_path, dir, "img/a.png");
    unsigned char *bytes = read_bytes(a_path, &len);
    write_bytes(trunc, bytes, len - 10);
    free(bytes);
    struct {
        const char *text;
        int line;
        FmStatus code;
        const char *message; /* substring; "%s" is the images folder */
    } cases[] = {
        {"stay_id,time_h\n1,2\n", 1, FM_ERR_FORMAT, "missing column 'path'"},
        {"stay_id,time_h,path,path\n", 1, FM_ERR_FORMAT, "column 'path' appears twice"},
        {"stay_id,time_h,path\n1,0,img/a.png\nabc,1,img/a.png\n", 3, FM_ERR_FORMAT,
         "column stay_id: expected an integer, got \"abc\""},
        {"stay_id,time_h,path\n1,0,img/a.png\n\n2,1h,img/a.png\n", 4, FM_ERR_FORMAT,
         "column time_h: expected a number, got \"1h\""},
        {"stay_id,time_h,path\n1,nan,img/a.png\n", 2, FM_ERR_FORMAT,
         "column time_h: expected a finite number"},
        {"stay_id,time_h,path\n1,,img/a.png\n", 2, FM_ERR_FORMAT, "column time_h: missing value"},
        {"stay_id,time_h,path\n1,2\n", 2, FM_ERR_FORMAT, "missing column 'path' (the line has 2 fields)"},
        {"stay_id,time_h,path\n1,2,\n", 2, FM_ERR_FORMAT, "column path: missing value"},
        {"stay_id,time_h,path\n1,2,img/a\"x.png\n", 2, FM_ERR_FORMAT, "malformed CSV"},
        {"stay_id,time_h,path\n1,2,\"img/a.png\n", 2, FM_ERR_FORMAT, "unterminated quoted field"},
        {"stay_id,time_h,path\n1,2,img/a.png\n3,4,img/missing.png\n", 3, FM_ERR_IO,
         "%s/img/missing.png: cannot open: No such file"},
        {"stay_id,time_h,path\n1,2,img/c.png\n", 2, FM_ERR_FORMAT, "%s/img/c.png: not a PNG file"},
        {"stay_id,time_h,path\r\n1,2,img/a.png\r\n1,3,img/d.png\r\n", 3, FM_ERR_FORMAT,
         "%s/img/d.png: truncated PNG file"},
    };
    FmError err;
    FmEventTable t;
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        write_text(csv, cases[c].text);
        snprintf(where, sizeof where, "%s:%d", csv, cases[c].line);
        snprintf(needle, sizeof needle, cases[c].message, dir);
        memset(&t, 0x5C, sizeof t);
        FmStatus st = fm_image_index_read(csv, 3, &t, &err);
        ck_assert_msg(strcmp(err.where, where) == 0, "case %zu: where %s, want %s", c, err.where, where);
        assert_error(st, &err, cases[c].code, where, needle);
        ck_assert(table_is_empty(&t));
    }
    write_text(csv, "");
    assert_error(fm_image_index_read(csv, 3, &t, &err), &err, FM_ERR_FORMAT, csv, "empty file");
    assert_error(fm_image_index_read(csv, 0, &t, &err), &err, FM_ERR_ARG, csv, "image size 0");
    snprintf(text, sizeof text, "%s/none.csv", dir);
    assert_error(fm_image_index_read(text, 3, &t, &err), &err, FM_ERR_IO, text, "cannot open");
    fm_test_rmtree(dir);
}
END_TEST

START_TEST(test_image_index_alloc_failure) {
    char dir[256], csv[512];
    fm_test_tmpdir(dir, sizeof dir);
    write_index_images(dir);
    join(csv, sizeof csv, dir, "index.csv");
    write_text(csv, "stay_id,time_h,path\n1,0,img/a.png\n2,1,img/b.png\n2,3,img/a.png\n");
    FmError err;
    FmEventTable t;
    fm_alloc_fail_reset();
    ck_assert_int_eq(fm_image_index_read(csv, 5, &t, &err), FM_OK);
    long calls = fm_alloc_calls();
    fm_event_table_free(&t);
    ck_assert_int_ge(calls, 10);
    for (long n = 1; n <= calls; n++) {
        fm_alloc_fail_after(n);
        FmStatus st = fm_image_index_read(csv, 5, &t, &err);
        fm_alloc_fail_reset();
        ck_assert_msg(st == FM_ERR_NOMEM, "allocation %ld: status %d: %s: %s", n, st, err.where, err.message);
        ck_assert(table_is_empty(&t));
    }
    fm_test_rmtree(dir);
}
END_TEST

/* Files written by h5py and PIL (tests/fixtures/make_media_fixtures.py, which printed the
 * expected values below). */
START_TEST(test_files_from_other_tools) {
    FmError err;
    FmEventTable t;
    ck_assert_int_eq(fm_notes_read_h5("tests/fixtures/media/notes_h5py.h5", &t, &err), FM_OK);
    ck_assert_uint_eq(t.n, 3);
    ck_assert_int_eq(t.dim, 4);
    const int64_t ids[3] = {7, 7, 9};
    const float times[3] = {1.5f, 30.25f, -0.5f};
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(t.stay_id[i], ids[i]);
        ck_assert_float_eq(t.time_h[i], times[i]);
    }
    for (int i = 0; i < 12; i++)
        ck_assert_float_eq(t.values[i], (float)i / 8.0f - 0.5f);
    fm_event_table_free(&t);
    ck_assert_int_eq(fm_image_features_read_h5("tests/fixtures/media/features_h5py.h5", &t, &err), FM_OK);
    ck_assert_uint_eq(t.n, 2);
    ck_assert_int_eq(t.dim, 3);
    const float feats[6] = {1.0f, -2.0f, 3.5f, 0.25f, 0.0f, -1.0f};
    fm_assert_close(t.values, feats, 6, 0, 0, "features");
    ck_assert_int_eq(t.stay_id[1], 2);
    ck_assert_float_eq(t.time_h[1], 12.0f);
    fm_event_table_free(&t);
    float *px;
    int w, h;
    ck_assert_int_eq(fm_png_read_gray("tests/fixtures/media/palette_trns.png", &px, &w, &h, &err), FM_OK);
    ck_assert_int_eq(w, 3);
    ck_assert_int_eq(h, 2);
    const float pal[6] = {1.0f, 0.150086275f, 0.0f, 0.071176471f, 1.0f, 0.150086275f};
    fm_assert_close(px, pal, 6, 1e-8, 0, "palette"); /* 9 printed decimals; observed 0 */
    fm_free(px);
    ck_assert_int_eq(fm_png_read_gray("tests/fixtures/media/gray16.png", &px, &w, &h, &err), FM_OK);
    const float g16[4] = {0.0f, 0.015259022f, 0.610360876f, 1.0f};
    fm_assert_close(px, g16, 4, 1e-8, 0, "gray16"); /* observed 0 */
    fm_free(px);
}
END_TEST

static Suite *media_suite(void) {
    Suite *s = suite_create("media");
    TCase *tc = tcase_create("media");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_notes_and_features_roundtrip);
    tcase_add_test(tc, test_notes_float64_and_int32);
    tcase_add_test(tc, test_event_h5_malformed);
    tcase_add_test(tc, test_event_h5_deterministic);
    tcase_add_test(tc, test_event_h5_alloc_failure);
    tcase_add_test(tc, test_png_all_formats);
    tcase_add_test(tc, test_png_known_values);
    tcase_add_test(tc, test_png_write_roundtrip);
    tcase_add_test(tc, test_png_malformed);
    tcase_add_test(tc, test_png_alloc_failure);
    tcase_add_test(tc, test_cxr_samples);
    tcase_add_test(tc, test_resize_known_patterns);
    tcase_add_test(tc, test_resize_invariants);
    tcase_add_test(tc, test_image_index_read);
    tcase_add_test(tc, test_image_index_malformed);
    tcase_add_test(tc, test_image_index_alloc_failure);
    tcase_add_test(tc, test_files_from_other_tools);
    suite_add_tcase(s, tc);
    return s;
}

int main(int argc, char **argv) {
    fm_blas_select_kernel(argv);
    return fm_test_run_suite(media_suite());
}
