#include "preprocessing/summary_features.h"

#include <math.h>
#include <string.h>

#include "src/alloc.h"

static const char *const SERIES_STATS[] = {"first", "last", "min", "max", "mean", "log_count"};
enum { N_SERIES_STATS = 6 };

/* Features a modality contributes. */
static int features_of(const FmCohortModality *md) {
    switch (md->kind) {
    case FM_MODALITY_SERIES: return N_SERIES_STATS * md->C;
    case FM_MODALITY_STATIC: return md->C;
    case FM_MODALITY_EVENTS: return md->C + 1;
    case FM_MODALITY_IMAGES: return 0;
    }
    return 0;
}

void fm_summary_features_free(FmSummaryFeatures *s) {
    if (!s) return;
    for (int f = 0; f < s->F && s->name; f++) fm_free(s->name[f]);
    fm_free(s->name);
    fm_free(s->X);
    memset(s, 0, sizeof *s);
}

static FmStatus set_name(FmSummaryFeatures *s, int f, const char *mod, const char *chan, const char *stat,
                         FmError *err) {
    char buf[256];
    if (chan && stat)
        snprintf(buf, sizeof buf, "%s.%s.%s", mod, chan, stat);
    else
        snprintf(buf, sizeof buf, "%s.%s", mod, chan ? chan : stat);
    s->name[f] = fm_strdup(buf);
    return s->name[f] ? FM_OK : FM_FAIL(err, FM_ERR_NOMEM, NULL, "out of memory naming features");
}

static FmStatus name_features(FmSummaryFeatures *s, const FmCohortModality *md, int f0, FmError *err) {
    FmStatus st = FM_OK;
    if (md->kind == FM_MODALITY_SERIES) {
        for (int c = 0; c < md->C && st == FM_OK; c++)
            for (int k = 0; k < N_SERIES_STATS && st == FM_OK; k++)
                st = set_name(s, f0 + c * N_SERIES_STATS + k, md->name, md->channel[c], SERIES_STATS[k], err);
    } else if (md->kind == FM_MODALITY_STATIC) {
        for (int c = 0; c < md->C && st == FM_OK; c++) st = set_name(s, f0 + c, md->name, md->channel[c], NULL, err);
    } else if (md->kind == FM_MODALITY_EVENTS) {
        for (int c = 0; c < md->C && st == FM_OK; c++) {
            char dim[32];
            snprintf(dim, sizeof dim, "mean%d", c);
            st = set_name(s, f0 + c, md->name, dim, NULL, err);
        }
        if (st == FM_OK) st = set_name(s, f0 + md->C, md->name, NULL, "log_count", err);
    }
    return st;
}

/* Writes modality md's features of stay i into x. */
static void summarise(const FmCohortModality *md, int64_t i, float *x) {
    const int64_t r0 = md->offset[i], r1 = md->offset[i + 1];
    const int C = md->C;
    if (md->kind == FM_MODALITY_SERIES) {
        for (int c = 0; c < C; c++) {
            float first = NAN, last = NAN, lo = INFINITY, hi = -INFINITY;
            double sum = 0.0;
            int count = 0;
            for (int64_t r = r0; r < r1; r++) { /* rows are in time order */
                if (!md->mask[r * C + c]) continue;
                float v = md->value[r * C + c];
                if (!count) first = v;
                last = v;
                lo = fminf(lo, v);
                hi = fmaxf(hi, v);
                sum += v;
                count++;
            }
            float *o = x + c * N_SERIES_STATS;
            o[0] = first;
            o[1] = last;
            o[2] = count ? lo : NAN;
            o[3] = count ? hi : NAN;
            o[4] = count ? (float)(sum / count) : NAN;
            o[5] = (float)log1p((double)count);
        }
    } else if (md->kind == FM_MODALITY_STATIC) {
        for (int c = 0; c < C; c++)
            x[c] = r1 > r0 && md->mask[r0 * C + c] ? md->value[r0 * C + c] : NAN;
    } else if (md->kind == FM_MODALITY_EVENTS) {
        for (int c = 0; c < C; c++) {
            double sum = 0.0;
            for (int64_t r = r0; r < r1; r++) sum += md->value[r * C + c];
            x[c] = r1 > r0 ? (float)(sum / (double)(r1 - r0)) : NAN;
        }
        x[C] = (float)log1p((double)(r1 - r0));
    }
}

FmStatus fm_summary_features(const FmCohort *c, const int *mods, int n_mods, const int64_t *idx,
                             int64_t n, FmSummaryFeatures *out, FmError *err) {
    memset(out, 0, sizeof *out);
    if (!mods) n_mods = c->M;
    int F = 0;
    for (int k = 0; k < n_mods; k++) {
        FM_ASSERT(!mods || (mods[k] >= 0 && mods[k] < c->M));
        F += features_of(&c->mod[mods ? mods[k] : k]);
    }
    out->F = F;
    out->n = n;
    out->name = fm_calloc((size_t)F + 1, sizeof *out->name);
    out->X = fm_malloc_array((size_t)n * (size_t)F + 1, sizeof *out->X);
    if (!out->name || !out->X) {
        fm_summary_features_free(out);
        return FM_FAIL(err, FM_ERR_NOMEM, NULL, "out of memory for summary features");
    }
    int f0 = 0;
    for (int k = 0; k < n_mods; k++) {
        const FmCohortModality *md = &c->mod[mods ? mods[k] : k];
        FmStatus st = name_features(out, md, f0, err);
        if (st != FM_OK) {
            fm_summary_features_free(out);
            return st;
        }
        for (int64_t j = 0; j < n; j++) summarise(md, idx[j], out->X + (size_t)j * F + f0);
        f0 += features_of(md);
    }
    return FM_OK;
}

void fm_summary_impute_means(FmSummaryFeatures *s, const int64_t *rows, int64_t n_rows, double *means) {
    for (int f = 0; f < s->F; f++) {
        double sum = 0.0;
        int64_t k = 0;
        for (int64_t j = 0; j < n_rows; j++) {
            float v = s->X[(size_t)rows[j] * s->F + f];
            if (isfinite(v)) sum += v, k++;
        }
        means[f] = k ? sum / (double)k : 0.0;
    }
    fm_summary_impute_with(s, means);
}

void fm_summary_impute_with(FmSummaryFeatures *s, const double *means) {
    for (int64_t j = 0; j < s->n; j++)
        for (int f = 0; f < s->F; f++) {
            float *v = &s->X[(size_t)j * s->F + f];
            if (!isfinite(*v)) *v = (float)means[f];
        }
}
