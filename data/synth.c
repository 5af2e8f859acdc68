#include "data/synth.h"

#include <errno.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>

#include "preprocessing/image_features_h5.h"
#include "preprocessing/notes_h5.h"
#include "preprocessing/png_image.h"
#include "src/alloc.h"
#include "src/atomic_file.h"

/* The CSV outputs, opened together and published together at the end. */
enum { OUT_OBS, OUT_LABELS, OUT_LATENT, OUT_INDEX, N_OUT };
static const char *const OUT_NAMES[N_OUT] = {FM_SYNTH_OBSERVATIONS_CSV, FM_SYNTH_LABELS_CSV,
                                             FM_SYNTH_LATENT_CSV, FM_SYNTH_IMAGE_INDEX_CSV};

typedef struct {
    const char *dir;
    FmAtomicFile out[N_OUT];
    int opened[N_OUT];
    FmEventTable notes, feats; /* grown as stays are generated */
    size_t notes_cap, feats_cap;
    uint8_t *png8; /* (image_size, image_size) */
    FmSynthModel model;
    FmSynthStay stay;
} Writer;

static FmStatus path_in(const char *dir, const char *name, char *out, size_t cap, FmError *err) {
    int n = snprintf(out, cap, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= cap) return FM_FAIL(err, FM_ERR_ARG, dir, "output path too long");
    return FM_OK;
}

/* mkdir -p for `path`. */
static FmStatus make_dirs(const char *path, FmError *err) {
    char buf[FM_PATH_MAX];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
        return FM_FAIL(err, FM_ERR_ARG, path, "path too long");
    for (char *p = buf + 1;; p++) {
        char c = *p;
        if (c != '/' && c != '\0') continue;
        *p = '\0';
        struct stat st;
        if (mkdir(buf, 0777) != 0 && errno != EEXIST)
            return FM_FAIL(err, FM_ERR_IO, buf, "cannot create folder: %s", strerror(errno));
        if (stat(buf, &st) != 0 || !S_ISDIR(st.st_mode)) return FM_FAIL(err, FM_ERR_IO, buf, "not a folder");
        *p = c;
        if (c == '\0') break;
    }
    return FM_OK;
}

/* Makes room for `need` rows in a growing event table. */
static FmStatus table_reserve(FmEventTable *t, size_t *cap, size_t need, FmError *err) {
    if (need <= *cap) return FM_OK;
    size_t n = *cap ? *cap : 256;
    while (n < need)
        n *= 2;
    int64_t *ids = fm_realloc(t->stay_id, n * sizeof *ids);
    if (ids) t->stay_id = ids;
    float *times = ids ? fm_realloc(t->time_h, n * sizeof *times) : NULL;
    if (times) t->time_h = times;
    float *values = times ? fm_realloc(t->values, n * (size_t)t->dim * sizeof *values) : NULL;
    if (!values) return FM_FAIL(err, FM_ERR_NOMEM, NULL, "out of memory for %zu vectors", n);
    t->values = values;
    *cap = n;
    return FM_OK;
}

static FmStatus append_rows(FmEventTable *t, size_t *cap, int64_t stay_id, const float *times,
                            const float *values, int count, FmError *err) {
    FmStatus st = table_reserve(t, cap, t->n + (size_t)count, err);
    if (st != FM_OK) return st;
    for (int i = 0; i < count; i++) {
        t->stay_id[t->n] = stay_id;
        t->time_h[t->n] = times[i];
        memcpy(t->values + t->n * (size_t)t->dim, values + (size_t)i * (size_t)t->dim,
               (size_t)t->dim * sizeof(float));
        t->n++;
    }
    return FM_OK;
}

static FmStatus write_mapping(const char *dir, FmError *err) {
    char path[FM_PATH_MAX];
    FmStatus st = path_in(dir, FM_SYNTH_MAPPING_CSV, path, sizeof path, err);
    if (st != FM_OK) return st;
    FmAtomicFile af;
    st = fm_atomic_open(&af, path, err);
    if (st != FM_OK) return st;
    fprintf(af.f, "variable,modality,min,max\n");
    for (int v = 0; v < FM_SYNTH_N_VARIABLES; v++) {
        const FmSynthVariable *x = &FM_SYNTH_VARIABLES[v];
        fprintf(af.f, "%s,%s,%g,%g\n", x->name, x->modality, x->min, x->max);
    }
    return fm_atomic_close(&af, err);
}

static void write_headers(Writer *w) {
    fprintf(w->out[OUT_OBS].f, "stay_id,time_h,variable,value\n");
    fprintf(w->out[OUT_LABELS].f, "stay_id,mortality,los_days");
    for (int k = 0; k < FM_SYNTH_N_PHENOTYPES; k++)
        fprintf(w->out[OUT_LABELS].f, ",%s", FM_SYNTH_PHENOTYPE_NAMES[k]);
    fprintf(w->out[OUT_LABELS].f, "\n");
    fprintf(w->out[OUT_LATENT].f, "stay_id");
    for (int k = 0; k < FM_SYNTH_N_FACTORS; k++)
        fprintf(w->out[OUT_LATENT].f, ",%s", FM_SYNTH_FACTOR_NAMES[k]);
    fprintf(w->out[OUT_LATENT].f, ",has_labs,has_notes,has_images\n");
    fprintf(w->out[OUT_INDEX].f, "stay_id,time_h,path\n");
}

/* Writes one stay's rows, vectors and images. */
static FmStatus write_stay(Writer *w, FmSynthSummary *sum, FmError *err) {
    const FmSynthStay *s = &w->stay;
    const FmSynthConfig *c = &w->model.cfg;
    long long id = (long long)s->stay_id;
    FILE *obs = w->out[OUT_OBS].f;
    for (size_t i = 0; i < s->n_obs; i++) {
        const FmSynthObs *o = &s->obs[i];
        const FmSynthVariable *v = &FM_SYNTH_VARIABLES[o->var];
        fprintf(obs, "%lld,%.3f,%s,%.*f\n", id, o->time_h, v->name, v->decimals, o->value);
        if (o->value == FM_SYNTH_ARTIFACT) sum->artifacts++;
    }
    sum->observations += s->n_obs;

    FILE *lab = w->out[OUT_LABELS].f;
    fprintf(lab, "%lld,%d,", id, s->mortality);
    if (isnan(s->los_days))
        sum->los_unknown++;
    else
        fprintf(lab, "%.2f", s->los_days);
    for (int k = 0; k < FM_SYNTH_N_PHENOTYPES; k++) {
        fprintf(lab, ",%d", s->phenotype[k]);
        sum->phenotype[k] += s->phenotype[k];
    }
    fprintf(lab, "\n");
    sum->deaths += s->mortality;
    sum->los_over_7d += !isnan(s->los_days) && s->los_days > 7.0;

    FILE *lat = w->out[OUT_LATENT].f;
    fprintf(lat, "%lld", id);
    for (int k = 0; k < FM_SYNTH_N_FACTORS; k++)
        fprintf(lat, ",%.4f", s->z[k]);
    fprintf(lat, ",%d,%d,%d\n", s->has_labs, s->has_notes, s->has_images);
    sum->stays_with_labs += s->has_labs;
    sum->stays_with_notes += s->has_notes;
    sum->stays_with_images += s->has_images;

    FmStatus st =
        append_rows(&w->notes, &w->notes_cap, s->stay_id, s->note_time, s->note_vec, s->n_notes, err);
    if (st == FM_OK)
        st =
            append_rows(&w->feats, &w->feats_cap, s->stay_id, s->image_time, s->image_feat, s->n_images, err);
    sum->notes += (size_t)s->n_notes;
    sum->images += (size_t)s->n_images;

    const int S = c->image_size;
    const size_t px = (size_t)S * (size_t)S;
    for (int i = 0; i < s->n_images && st == FM_OK; i++) {
        const float *g = s->pixels + (size_t)i * px;
        for (size_t p = 0; p < px; p++)
            w->png8[p] = (uint8_t)lrint(g[p] * 255.0f);
        char name[64], rel[96], path[FM_PATH_MAX];
        snprintf(name, sizeof name, "%lld_%d.png", id, i);
        snprintf(rel, sizeof rel, "%s/%s", FM_SYNTH_IMAGES_DIR, name);
        st = path_in(w->dir, rel, path, sizeof path, err);
        if (st == FM_OK) st = fm_png_write_gray8(path, w->png8, S, S, err);
        if (st == FM_OK) fprintf(w->out[OUT_INDEX].f, "%lld,%.3f,%s\n", id, s->image_time[i], name);
    }
    return st;
}

static void writer_free(Writer *w) {
    for (int k = 0; k < N_OUT; k++)
        if (w->opened[k]) fm_atomic_discard(&w->out[k]);
    fm_event_table_free(&w->notes);
    fm_event_table_free(&w->feats);
    fm_free(w->png8);
    fm_synth_stay_free(&w->stay);
    fm_synth_model_free(&w->model);
}

FmStatus fm_synth_write(const FmSynthConfig *cfg, const char *dir, FmSynthSummary *summary, FmError *err) {
    Writer w;
    memset(&w, 0, sizeof w);
    w.dir = dir;
    FmSynthSummary sum;
    memset(&sum, 0, sizeof sum);
    sum.stays = cfg->stays;
    char path[FM_PATH_MAX];
    FmStatus st = fm_synth_model_init(&w.model, cfg, err);
    if (st == FM_OK) st = fm_synth_stay_alloc(&w.stay, &w.model, err);
    if (st == FM_OK) {
        w.png8 = fm_malloc_array((size_t)cfg->image_size, (size_t)cfg->image_size);
        if (!w.png8) st = FM_FAIL(err, FM_ERR_NOMEM, NULL, "out of memory for an image");
    }
    w.notes.dim = cfg->note_dim;
    w.feats.dim = cfg->image_feature_dim;
    if (st == FM_OK) st = path_in(dir, FM_SYNTH_IMAGES_DIR, path, sizeof path, err);
    if (st == FM_OK) st = make_dirs(path, err);
    if (st == FM_OK) st = write_mapping(dir, err);
    for (int k = 0; k < N_OUT && st == FM_OK; k++) {
        st = path_in(dir, OUT_NAMES[k], path, sizeof path, err);
        if (st == FM_OK) st = fm_atomic_open(&w.out[k], path, err);
        w.opened[k] = st == FM_OK;
    }
    if (st == FM_OK) write_headers(&w);
    for (int i = 0; i < cfg->stays && st == FM_OK; i++) {
        fm_synth_stay_generate(&w.model, (uint64_t)i, &w.stay);
        st = write_stay(&w, &sum, err);
    }
    if (st == FM_OK) st = path_in(dir, FM_SYNTH_NOTES_H5, path, sizeof path, err);
    if (st == FM_OK) st = fm_notes_write_h5(path, &w.notes, err);
    if (st == FM_OK) st = path_in(dir, FM_SYNTH_IMAGE_FEATURES_H5, path, sizeof path, err);
    if (st == FM_OK) st = fm_image_features_write_h5(path, &w.feats, err);
    for (int k = 0; k < N_OUT && st == FM_OK; k++) {
        w.opened[k] = 0;
        st = fm_atomic_close(&w.out[k], err);
    }
    writer_free(&w);
    if (st == FM_OK && summary) *summary = sum;
    return st;
}

/* Appends `text` to buf at *len as it is (buf keeps a NUL; *len counts the full length). */
static void append_raw(char *buf, size_t cap, size_t *len, const char *text) {
    if (*len < cap) snprintf(buf + *len, cap - *len, "%s", text);
    *len += strlen(text);
}

/* Appends " <arg>", single-quoted for a POSIX shell when it holds anything but
 * [A-Za-z0-9_./:=+-]. */
static void append_arg(char *buf, size_t cap, size_t *len, const char *arg) {
    int plain = *arg != '\0';
    for (const char *p = arg; *p; p++)
        if (!strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_./:=+-", *p)) plain = 0;
    append_raw(buf, cap, len, " ");
    if (plain) {
        append_raw(buf, cap, len, arg);
        return;
    }
    append_raw(buf, cap, len, "'");
    char one[2] = {0, 0};
    for (const char *p = arg; *p; p++) {
        one[0] = *p;
        append_raw(buf, cap, len, *p == '\'' ? "'\\''" : one);
    }
    append_raw(buf, cap, len, "'");
}

size_t fm_synth_prepare_command(const FmSynthConfig *cfg, const char *dir, char *buf, size_t cap) {
    /* prepare's options and what each one names, in order. */
    static const struct {
        const char *option, *file;
    } FILES[] = {
        {"--long-csv", FM_SYNTH_OBSERVATIONS_CSV},
        {"--labels", FM_SYNTH_LABELS_CSV},
        {"--mapping", FM_SYNTH_MAPPING_CSV},
        {"--notes", FM_SYNTH_NOTES_H5},
        {"--image-features", FM_SYNTH_IMAGE_FEATURES_H5},
        {"--images", FM_SYNTH_IMAGE_INDEX_CSV},
    };
    size_t len = 0;
    char path[FM_PATH_MAX * 2], num[32];
    if (cap) buf[0] = '\0';
    append_raw(buf, cap, &len, "fusemoe prepare");
    for (size_t i = 0; i < sizeof FILES / sizeof *FILES; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, FILES[i].file);
        append_arg(buf, cap, &len, FILES[i].option);
        append_arg(buf, cap, &len, path);
    }
    snprintf(num, sizeof num, "%d", cfg->image_size);
    append_arg(buf, cap, &len, "--image-size");
    append_arg(buf, cap, &len, num);
    append_arg(buf, cap, &len, "--phenotype-prefix");
    append_arg(buf, cap, &len, FM_SYNTH_PHENOTYPE_PREFIX);
    snprintf(path, sizeof path, "%s/%s", dir, FM_SYNTH_COHORT_H5);
    append_arg(buf, cap, &len, "--out");
    append_arg(buf, cap, &len, path);
    return len;
}
