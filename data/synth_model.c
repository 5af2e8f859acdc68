#include "data/synth_model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "src/alloc.h"

const char *const FM_SYNTH_FACTOR_NAMES[FM_SYNTH_N_FACTORS] = {"cardio", "renal",  "resp",
                                                               "neuro",  "infect", "age"};

const char *const FM_SYNTH_PHENOTYPE_NAMES[FM_SYNTH_N_PHENOTYPES] = {"phe_shock", "phe_aki", "phe_pneumonia",
                                                                     "phe_sepsis", "phe_delirium"};

/* Names follow PhysioNet 2012 where it has the variable; ranges are wide plausible bounds. */
const FmSynthVariable FM_SYNTH_VARIABLES[FM_SYNTH_N_VARIABLES] = {
    {"HR", "vitals", 0, 300, 0},      {"MAP", "vitals", 0, 300, 0},      {"RespRate", "vitals", 0, 100, 0},
    {"Temp", "vitals", 25, 45, 1},    {"SpO2", "vitals", 0, 100, 0},     {"Creatinine", "labs", 0, 30, 2},
    {"BUN", "labs", 0, 300, 0},       {"HCO3", "labs", 0, 60, 0},        {"Lactate", "labs", 0, 40, 1},
    {"WBC", "labs", 0, 200, 1},       {"Platelets", "labs", 0, 2000, 0}, {"Glucose", "labs", 0, 1500, 0},
    {"Age", "static", 0, 120, 0},     {"Gender", "static", 0, 1, 0},     {"Height", "static", 100, 250, 1},
    {"Weight", "static", 20, 300, 1},
};

/* Independent random streams of one stay (fm_rng_split numbers). Stream 0 of the root is the
 * planted directions; stay i uses root stream i + 1. */
enum { S_LATENT = 1, S_LABELS, S_MISSING, S_STATIC, S_VITALS, S_LABS, S_NOTES, S_IMAGES };

#define N_VITALS 5 /* FM_SYNTH_HR .. FM_SYNTH_SPO2 */
#define N_LABS 7   /* FM_SYNTH_CREATININE .. FM_SYNTH_GLUCOSE */
#define MAX_LAB_DRAWS 6
#define N_STATIC 4
#define MIN_VITALS_INTERVAL_H 0.75
#define ARTIFACT_RATE 0.002
#define OU_TAU_H 4.0 /* correlation time of the vitals' fluctuations */

FmSynthConfig fm_synth_default(void) {
    FmSynthConfig c = {.stays = 2000,
                       .seed = 1,
                       .note_dim = 64,
                       .image_feature_dim = 32,
                       .image_size = 32,
                       .missing_notes = 0.3,
                       .missing_images = 0.5,
                       .missing_labs = 0.1,
                       .window_h = 48.0};
    return c;
}

static int fraction_ok(double p) {
    return p >= 0.0 && p <= 1.0;
}

FmStatus fm_synth_config_check(const FmSynthConfig *c, FmError *err) {
    if (c->stays < 1 || c->stays > 10000000)
        return FM_FAIL(err, FM_ERR_ARG, "stays", "must be in 1..10000000, got %d", c->stays);
    if (c->note_dim < 2 || c->note_dim > 8192)
        return FM_FAIL(err, FM_ERR_ARG, "note-dim", "must be in 2..8192, got %d", c->note_dim);
    if (c->image_feature_dim < 1 || c->image_feature_dim > 8192)
        return FM_FAIL(err, FM_ERR_ARG, "image-feature-dim", "must be in 1..8192, got %d",
                       c->image_feature_dim);
    if (c->image_size < 8 || c->image_size > 1024)
        return FM_FAIL(err, FM_ERR_ARG, "image-size", "must be in 8..1024, got %d", c->image_size);
    if (!fraction_ok(c->missing_notes))
        return FM_FAIL(err, FM_ERR_ARG, "missing-notes", "must be in [0, 1], got %g", c->missing_notes);
    if (!fraction_ok(c->missing_images))
        return FM_FAIL(err, FM_ERR_ARG, "missing-images", "must be in [0, 1], got %g", c->missing_images);
    if (!fraction_ok(c->missing_labs))
        return FM_FAIL(err, FM_ERR_ARG, "missing-labs", "must be in [0, 1], got %g", c->missing_labs);
    if (!(c->window_h > 0.0 && c->window_h <= 10000.0))
        return FM_FAIL(err, FM_ERR_ARG, "window-h", "must be in (0, 10000], got %g", c->window_h);
    return FM_OK;
}

static double sigmoid(double x) {
    return 1.0 / (1.0 + exp(-x));
}
static double uniform(FmRng *r, double a, double b) {
    return a + (b - a) * fm_rng_uniform(r);
}
static int bernoulli(FmRng *r, double p) {
    return fm_rng_uniform(r) < p;
}

/* A random unit vector; with `ortho` non-NULL, made orthogonal to it (Gram-Schmidt). */
static void random_direction(FmRng *r, float *u, int dim, const float *ortho) {
    double norm;
    do {
        norm = 0.0;
        for (int i = 0; i < dim; i++)
            u[i] = (float)fm_rng_normal(r);
        if (ortho) {
            double dot = 0.0;
            for (int i = 0; i < dim; i++)
                dot += (double)u[i] * ortho[i];
            for (int i = 0; i < dim; i++)
                u[i] = (float)(u[i] - dot * ortho[i]);
        }
        for (int i = 0; i < dim; i++)
            norm += (double)u[i] * u[i];
    } while (norm < 1e-6);
    for (int i = 0; i < dim; i++)
        u[i] = (float)(u[i] / sqrt(norm));
}

void fm_synth_model_free(FmSynthModel *m) {
    if (!m) return;
    for (int k = 0; k < FM_SYNTH_N_DIRECTIONS; k++)
        fm_free(m->dir[k]);
    memset(m, 0, sizeof *m);
}

FmStatus fm_synth_model_init(FmSynthModel *m, const FmSynthConfig *cfg, FmError *err) {
    memset(m, 0, sizeof *m);
    FmStatus st = fm_synth_config_check(cfg, err);
    if (st != FM_OK) return st;
    m->cfg = *cfg;
    fm_rng_seed(&m->root, cfg->seed);
    const int dims[FM_SYNTH_N_DIRECTIONS] = {cfg->note_dim, cfg->note_dim, cfg->image_feature_dim};
    for (int k = 0; k < FM_SYNTH_N_DIRECTIONS; k++) {
        m->dir[k] = fm_malloc_array((size_t)dims[k], sizeof(float));
        if (!m->dir[k]) {
            fm_synth_model_free(m);
            return FM_FAIL(err, FM_ERR_NOMEM, NULL, "out of memory for the planted directions");
        }
    }
    FmRng dirs = fm_rng_split(&m->root, 0);
    for (int k = 0; k < FM_SYNTH_N_DIRECTIONS; k++) {
        FmRng r = fm_rng_split(&dirs, (uint64_t)k);
        random_direction(&r, m->dir[k], dims[k],
                         k == FM_SYNTH_DIR_NOTE_INFECT ? m->dir[FM_SYNTH_DIR_NOTE_NEURO] : NULL);
    }
    return FM_OK;
}

static size_t obs_capacity(double window_h) {
    size_t time_points = (size_t)ceil(window_h / MIN_VITALS_INTERVAL_H) + 2;
    return time_points * N_VITALS + MAX_LAB_DRAWS * N_LABS + N_STATIC;
}

void fm_synth_stay_free(FmSynthStay *s) {
    if (!s) return;
    fm_free(s->obs);
    fm_free(s->note_time);
    fm_free(s->note_vec);
    fm_free(s->image_time);
    fm_free(s->image_feat);
    fm_free(s->pixels);
    fm_free(s->scratch);
    memset(s, 0, sizeof *s);
}

FmStatus fm_synth_stay_alloc(FmSynthStay *s, const FmSynthModel *m, FmError *err) {
    memset(s, 0, sizeof *s);
    const FmSynthConfig *c = &m->cfg;
    s->cap_obs = obs_capacity(c->window_h);
    s->obs = fm_malloc_array(s->cap_obs, sizeof *s->obs);
    s->note_time = fm_malloc_array(FM_SYNTH_MAX_NOTES, sizeof *s->note_time);
    s->note_vec = fm_malloc_array((size_t)FM_SYNTH_MAX_NOTES * (size_t)c->note_dim, sizeof *s->note_vec);
    s->image_time = fm_malloc_array(FM_SYNTH_MAX_IMAGES, sizeof *s->image_time);
    s->image_feat =
        fm_malloc_array((size_t)FM_SYNTH_MAX_IMAGES * (size_t)c->image_feature_dim, sizeof *s->image_feat);
    s->pixels = fm_malloc_array((size_t)FM_SYNTH_MAX_IMAGES * (size_t)c->image_size * (size_t)c->image_size,
                                sizeof *s->pixels);
    int widest = c->note_dim > c->image_feature_dim ? c->note_dim : c->image_feature_dim;
    s->scratch = fm_malloc_array((size_t)widest, sizeof *s->scratch);
    if (!s->obs || !s->note_time || !s->note_vec || !s->image_time || !s->image_feat || !s->pixels ||
        !s->scratch) {
        fm_synth_stay_free(s);
        return FM_FAIL(err, FM_ERR_NOMEM, NULL, "out of memory for a synthetic stay");
    }
    return FM_OK;
}

/* ------------------------------------------------------------------------------------------ */

/* Times are recorded to 0.001 h (3.6 s), rounded down, so the CSVs' "%.3f" text is exact and
 * never reaches the window's end. */
static double quantise_time(double t) {
    return floor(t * 1000.0) / 1000.0;
}

static void add_obs(FmSynthStay *s, float t, int var, double value) {
    FM_ASSERT(s->n_obs < s->cap_obs);
    const FmSynthVariable *v = &FM_SYNTH_VARIABLES[var];
    if (value != FM_SYNTH_ARTIFACT) value = value < v->min ? v->min : value > v->max ? v->max : value;
    s->obs[s->n_obs++] = (FmSynthObs){.time_h = t, .var = var, .value = value};
}

static int obs_cmp(const void *a, const void *b) {
    const FmSynthObs *x = a, *y = b;
    if (x->time_h != y->time_h) return x->time_h < y->time_h ? -1 : 1;
    return (x->var > y->var) - (x->var < y->var);
}

static int float_cmp(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* Missingness that leans mildly on a factor: logit P(missing) = logit(p) - 0.4 z. Averaged
 * over z ~ N(0, 1) this stays within 0.008 of p for every p (numerical integration: largest
 * gap 0.0073 at p = 0.2); p = 0 or 1 stays exact. */
static double informative(double p, double z) {
    if (p <= 0.0 || p >= 1.0) return p;
    return sigmoid(log(p / (1.0 - p)) - 0.4 * z);
}

static void gen_labels(FmRng *r, FmSynthStay *s) {
    const double *z = s->z;
    double eta = -2.75 + 0.9 * z[FM_SYNTH_Z_CARDIO] + 0.8 * z[FM_SYNTH_Z_RENAL] + 0.8 * z[FM_SYNTH_Z_RESP] +
                 0.8 * z[FM_SYNTH_Z_NEURO] + 0.5 * z[FM_SYNTH_Z_INFECT] + 0.6 * z[FM_SYNTH_Z_AGE];
    s->mortality = bernoulli(r, sigmoid(eta));
    double log_los = log(5.5) + 0.1 * z[FM_SYNTH_Z_CARDIO] + 0.2 * z[FM_SYNTH_Z_RENAL] +
                     0.25 * z[FM_SYNTH_Z_RESP] + 0.15 * z[FM_SYNTH_Z_NEURO] + 0.25 * z[FM_SYNTH_Z_INFECT] +
                     0.5 * fm_rng_normal(r);
    s->los_days = 2.0 + exp(log_los);
    if (bernoulli(r, 0.01)) s->los_days = NAN;
    s->phenotype[FM_SYNTH_PHE_SHOCK] = bernoulli(r, sigmoid(-1.6 + 2.2 * z[FM_SYNTH_Z_CARDIO]));
    s->phenotype[FM_SYNTH_PHE_AKI] = bernoulli(r, sigmoid(-1.4 + 2.2 * z[FM_SYNTH_Z_RENAL]));
    s->phenotype[FM_SYNTH_PHE_PNEUMONIA] = bernoulli(r, sigmoid(-1.5 + 2.2 * z[FM_SYNTH_Z_RESP]));
    s->phenotype[FM_SYNTH_PHE_SEPSIS] = bernoulli(r, sigmoid(-1.3 + 2.0 * z[FM_SYNTH_Z_INFECT]));
    s->phenotype[FM_SYNTH_PHE_DELIRIUM] = bernoulli(r, sigmoid(-1.8 + 2.2 * z[FM_SYNTH_Z_NEURO]));
}

/* Descriptors at time 0: Age from the age factor; gender, height and weight are distractors. */
static void gen_static(FmRng *r, FmSynthStay *s) {
    double age = 64.0 + 14.0 * s->z[FM_SYNTH_Z_AGE];
    add_obs(s, 0.0f, FM_SYNTH_AGE, age < 18 ? 18 : age > 95 ? 95 : age);
    int female = bernoulli(r, 0.45);
    double height = (female ? 162.0 : 176.0) + 8.0 * fm_rng_normal(r);
    double weight = (female ? 72.0 : 84.0) + 16.0 * fm_rng_normal(r);
    if (bernoulli(r, 0.95)) add_obs(s, 0.0f, FM_SYNTH_GENDER, female ? 0 : 1);
    if (bernoulli(r, 0.60)) add_obs(s, 0.0f, FM_SYNTH_HEIGHT, height);
    if (bernoulli(r, 0.90)) add_obs(s, 0.0f, FM_SYNTH_WEIGHT, weight);
}

/* Vitals: charted every D hours (D ~ U(0.75, 1.75) per stay) with jitter; each vital has an
 * Ornstein-Uhlenbeck fluctuation (correlation time 4 h). The cardio factor shows only in the
 * trend over the window (MAP down, HR up) and in the size of the fluctuations. */
static void gen_vitals(FmRng *r, FmSynthStay *s, double W) {
    static const double p_obs[N_VITALS] = {0.95, 0.85, 0.85, 0.30, 0.80};
    const double cardio = s->z[FM_SYNTH_Z_CARDIO], infect = s->z[FM_SYNTH_Z_INFECT];
    double dt_step = uniform(r, MIN_VITALS_INTERVAL_H, 1.75), offset = uniform(r, 0.0, dt_step);
    double x[N_VITALS];
    for (int v = 0; v < N_VITALS; v++)
        x[v] = fm_rng_normal(r);
    double t_prev = 0.0;
    for (int k = 0; offset + k * dt_step < W + dt_step; k++) {
        double t = offset + k * dt_step + 0.1 * dt_step * fm_rng_normal(r);
        double rho = exp(-fabs(t - t_prev) / OU_TAU_H), kick = sqrt(1.0 - rho * rho);
        for (int v = 0; v < N_VITALS; v++)
            x[v] = rho * x[v] + kick * fm_rng_normal(r);
        t_prev = t;
        int seen[N_VITALS], artifact[N_VITALS];
        for (int v = 0; v < N_VITALS; v++) {
            seen[v] = bernoulli(r, p_obs[v]);
            artifact[v] = bernoulli(r, ARTIFACT_RATE);
        }
        if (t < 0.0 || t >= W) continue;
        double frac = t / W;
        double value[N_VITALS];
        value[0] = 85.0 + 8.0 * infect + 12.0 * cardio * frac + 7.0 * exp(0.35 * cardio) * x[0];
        value[1] = 80.0 - 12.0 * cardio * frac + 6.0 * exp(0.3 * cardio) * x[1];
        value[2] = 18.0 + 2.5 * infect + 3.0 * x[2];
        value[3] = 37.0 + 0.5 * infect + 0.35 * x[3];
        value[4] = fmin(100.0, 96.5 + 1.5 * x[4]);
        for (int v = 0; v < N_VITALS; v++)
            if (seen[v])
                add_obs(s, (float)quantise_time(t), FM_SYNTH_HR + v,
                        artifact[v] ? FM_SYNTH_ARTIFACT : value[v]);
    }
}

/* Labs: 2 to 6 blood draws (the first within 2 h of admission), each a panel with
 * per-test missingness. Lactate is ordered more often for unstable stays (P = sigmoid(-1 +
 * 0.8 cardio), about 30% on average): mild informative missingness. */
static void gen_labs(FmRng *r, FmSynthStay *s, double W) {
    const double renal = s->z[FM_SYNTH_Z_RENAL], infect = s->z[FM_SYNTH_Z_INFECT];
    const double cardio = s->z[FM_SYNTH_Z_CARDIO];
    int draws = 2 + (int)fm_rng_below(r, MAX_LAB_DRAWS - 1);
    double times[MAX_LAB_DRAWS];
    times[0] = quantise_time(uniform(r, 0.0, fmin(2.0, W)));
    for (int j = 1; j < draws; j++)
        times[j] = quantise_time(uniform(r, 0.0, W));
    double plt_level = fm_rng_normal(r), glu_level = fm_rng_normal(r);
    const double p_obs[N_LABS] = {0.95, 0.95, 0.90, sigmoid(-1.0 + 0.8 * cardio), 0.90, 0.85, 0.90};
    for (int j = 0; j < draws; j++) {
        double frac = times[j] / W;
        double value[N_LABS];
        value[0] = exp(0.45 * renal + 0.2 * renal * frac + 0.08 * fm_rng_normal(r));
        value[1] = 20.0 * exp(0.4 * renal + 0.12 * fm_rng_normal(r));
        value[2] = 24.0 - 2.5 * renal + 1.2 * fm_rng_normal(r);
        value[3] = 1.5 * exp(0.35 * renal + 0.25 * fm_rng_normal(r));
        value[4] = 10.0 * exp(0.3 * infect + 0.15 * fm_rng_normal(r));
        value[5] = 220.0 * exp(0.25 * plt_level + 0.08 * fm_rng_normal(r));
        value[6] = 130.0 + 25.0 * glu_level + 15.0 * fm_rng_normal(r);
        for (int v = 0; v < N_LABS; v++)
            if (bernoulli(r, p_obs[v])) add_obs(s, (float)times[j], FM_SYNTH_CREATININE + v, value[v]);
    }
}

/* count items at sorted uniform times in [0, W). */
static void event_times(FmRng *r, float *t, int count, double W) {
    for (int i = 0; i < count; i++)
        t[i] = (float)quantise_time(uniform(r, 0.0, W));
    qsort(t, (size_t)count, sizeof *t, float_cmp);
}

/* Vectors (count, dim): a per-stay offset (sd 0.5, shared by the stay's items) + unit noise
 * + a1 u1 + a2 u2 (the planted directions; u2 may be NULL). `offset` is scratch (dim). */
static void gen_vectors(FmRng *r, float *out, int count, int dim, float *offset, const float *u1, double a1,
                        const float *u2, double a2) {
    for (int d = 0; d < dim; d++)
        offset[d] = (float)(0.5 * fm_rng_normal(r));
    for (int i = 0; i < count; i++)
        for (int d = 0; d < dim; d++) {
            double v = offset[d] + fm_rng_normal(r) + a1 * u1[d] + (u2 ? a2 * u2[d] : 0.0);
            out[(size_t)i * (size_t)dim + (size_t)d] = (float)v;
        }
}

/* Smooth inside indicator of an ellipse (1 inside, 0 outside, edge width ~ soft). */
static double ellipse(double u, double v, double cu, double cv, double ru, double rv, double soft) {
    double d = sqrt((u - cu) * (u - cu) / (ru * ru) + (v - cv) * (v - cv) / (rv * rv));
    return sigmoid((1.0 - d) / soft);
}

/* A chest-radiograph-like image: body, two dark lung fields, a bright mediastinum, and an
 * opacity blob in one lung whose amplitude 0.5 sigmoid(1.8 resp - 1) grows with the resp
 * factor; per-image shift, contrast, brightness and pixel noise. */
static void render_image(FmRng *r, double resp, int S, float *out) {
    double dx = 0.02 * fm_rng_normal(r), dy = 0.02 * fm_rng_normal(r);
    double contrast = 1.0 + 0.08 * fm_rng_normal(r), bright = 0.04 * fm_rng_normal(r);
    double side = fm_rng_below(r, 2) ? 1.0 : -1.0;
    double rad = sqrt(fm_rng_uniform(r)), ang = 2.0 * M_PI * fm_rng_uniform(r);
    double lung_cu = 0.5 + 0.19 * side + dx, lung_cv = 0.5 + dy;
    double bu = lung_cu + 0.6 * 0.14 * rad * cos(ang), bv = lung_cv + 0.6 * 0.28 * rad * sin(ang);
    double amp = 0.5 * sigmoid(1.8 * resp - 1.0), sb = 0.06;
    for (int y = 0; y < S; y++) {
        for (int x = 0; x < S; x++) {
            double u = (x + 0.5) / S, v = (y + 0.5) / S;
            double body = ellipse(u, v, 0.5 + dx, 0.55 + dy, 0.46, 0.5, 0.05);
            double val = 0.05 + 0.5 * body;
            double lung = fmax(ellipse(u, v, 0.31 + dx, 0.5 + dy, 0.14, 0.28, 0.06),
                               ellipse(u, v, 0.69 + dx, 0.5 + dy, 0.14, 0.28, 0.06));
            val += (0.2 - val) * lung;
            val += 0.15 * body * sigmoid((0.05 - fabs(u - 0.5 - dx)) / 0.01);
            val += amp * exp(-((u - bu) * (u - bu) + (v - bv) * (v - bv)) / (2.0 * sb * sb));
            val = 0.5 + contrast * (val - 0.5) + bright + 0.03 * fm_rng_normal(r);
            out[(size_t)y * (size_t)S + (size_t)x] = (float)(val < 0.0 ? 0.0 : val > 1.0 ? 1.0 : val);
        }
    }
}

void fm_synth_stay_generate(const FmSynthModel *m, uint64_t index, FmSynthStay *s) {
    const FmSynthConfig *c = &m->cfg;
    const double W = c->window_h;
    FmRng stay = fm_rng_split(&m->root, index + 1);
    FmRng r;
    s->stay_id = FM_SYNTH_FIRST_STAY_ID + (int64_t)index;
    s->n_obs = 0;
    s->n_notes = s->n_images = 0;

    r = fm_rng_split(&stay, S_LATENT);
    for (int k = 0; k < FM_SYNTH_N_FACTORS; k++)
        s->z[k] = fm_rng_normal(&r);
    r = fm_rng_split(&stay, S_LABELS);
    gen_labels(&r, s);
    r = fm_rng_split(&stay, S_MISSING);
    s->has_labs = !bernoulli(&r, c->missing_labs);
    s->has_notes = !bernoulli(&r, c->missing_notes);
    s->has_images = !bernoulli(&r, informative(c->missing_images, s->z[FM_SYNTH_Z_RESP]));

    r = fm_rng_split(&stay, S_STATIC);
    gen_static(&r, s);
    r = fm_rng_split(&stay, S_VITALS);
    gen_vitals(&r, s, W);
    if (s->has_labs) {
        r = fm_rng_split(&stay, S_LABS);
        gen_labs(&r, s, W);
    }
    qsort(s->obs, s->n_obs, sizeof *s->obs, obs_cmp);

    if (s->has_notes) {
        r = fm_rng_split(&stay, S_NOTES);
        s->n_notes = 1 + (int)fm_rng_below(&r, FM_SYNTH_MAX_NOTES);
        event_times(&r, s->note_time, s->n_notes, W);
        gen_vectors(&r, s->note_vec, s->n_notes, c->note_dim, s->scratch, m->dir[FM_SYNTH_DIR_NOTE_NEURO],
                    1.0 * s->z[FM_SYNTH_Z_NEURO], m->dir[FM_SYNTH_DIR_NOTE_INFECT],
                    0.5 * s->z[FM_SYNTH_Z_INFECT]);
    }
    if (s->has_images) {
        r = fm_rng_split(&stay, S_IMAGES);
        s->n_images = 1 + (int)fm_rng_below(&r, FM_SYNTH_MAX_IMAGES);
        event_times(&r, s->image_time, s->n_images, W);
        gen_vectors(&r, s->image_feat, s->n_images, c->image_feature_dim, s->scratch,
                    m->dir[FM_SYNTH_DIR_IMAGE_RESP], 1.0 * s->z[FM_SYNTH_Z_RESP], NULL, 0.0);
        size_t px = (size_t)c->image_size * (size_t)c->image_size;
        for (int i = 0; i < s->n_images; i++)
            render_image(&r, s->z[FM_SYNTH_Z_RESP], c->image_size, s->pixels + (size_t)i * px);
    }
}
