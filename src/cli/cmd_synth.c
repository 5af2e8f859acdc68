/* fusemoe synth: write a synthetic multimodal cohort in the real input formats. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "data/synth.h"
#include "src/alloc.h"
#include "src/cli/commands.h"

static void synth_usage(FILE *out) {
    FmSynthConfig d = fm_synth_default();
    fprintf(out,
            "usage: fusemoe synth --out DIR [options]\n"
            "\n"
            "Generates a synthetic ICU cohort (vitals, labs, static descriptors, note embeddings,\n"
            "image features and PNG images, with outcomes that depend on latent factors spread\n"
            "across the modalities) in the same formats as real data, then prints the\n"
            "`fusemoe prepare` command that turns DIR into a cohort file.\n"
            "\n"
            "options:\n"
            "  --out DIR                  output folder (created if missing; files are replaced)\n"
            "  --stays N                  number of stays (default %d)\n"
            "  --seed S                   random seed; the same seed gives the same files (default %llu)\n"
            "  --note-dim F               note embedding width (default %d)\n"
            "  --image-feature-dim F      image feature width (default %d)\n"
            "  --image-size S             PNG side in pixels (default %d)\n"
            "  --missing-notes P          fraction of stays without notes (default %g)\n"
            "  --missing-images P         fraction of stays without images (default %g)\n"
            "  --missing-labs P           fraction of stays without labs (default %g)\n"
            "  --window-h H               observation window in hours (default %g)\n"
            "  --help                     this text\n",
            d.stays, (unsigned long long)d.seed, d.note_dim, d.image_feature_dim, d.image_size,
            d.missing_notes, d.missing_images, d.missing_labs, d.window_h);
}

static int parse_int(const char *opt, const char *s, int *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (end == s || *end || errno || v < -2147483647L || v > 2147483647L) {
        fprintf(stderr, "fusemoe synth: %s: expected an integer, got \"%s\"\n", opt, s);
        return 0;
    }
    *out = (int)v;
    return 1;
}

static int parse_u64(const char *opt, const char *s, uint64_t *out) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (end == s || *end || errno || s[0] == '-') {
        fprintf(stderr, "fusemoe synth: %s: expected a non-negative integer, got \"%s\"\n", opt, s);
        return 0;
    }
    *out = (uint64_t)v;
    return 1;
}

static int parse_double(const char *opt, const char *s, double *out) {
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end) {
        fprintf(stderr, "fusemoe synth: %s: expected a number, got \"%s\"\n", opt, s);
        return 0;
    }
    *out = v;
    return 1;
}

static double percent(long part, long whole) {
    return whole ? 100.0 * (double)part / (double)whole : 0.0;
}

int fm_cmd_synth(int argc, char **argv) {
    FmSynthConfig cfg = fm_synth_default();
    const char *out = NULL;
    for (int i = 1; i < argc; i++) {
        const char *opt = argv[i];
        if (strcmp(opt, "--help") == 0 || strcmp(opt, "-h") == 0) {
            synth_usage(stdout);
            return 0;
        }
        if (strncmp(opt, "--", 2) != 0) {
            fprintf(stderr, "fusemoe synth: unexpected argument \"%s\"\n", opt);
            synth_usage(stderr);
            return 2;
        }
        /* --name=value or --name value */
        char name[64];
        const char *value = strchr(opt, '=');
        if (value) {
            snprintf(name, sizeof name, "%.*s", (int)(value - opt), opt);
            value++;
        } else {
            snprintf(name, sizeof name, "%s", opt);
            if (i + 1 >= argc) {
                fprintf(stderr, "fusemoe synth: %s needs a value\n", name);
                return 2;
            }
            value = argv[++i];
        }
        int ok;
        if (strcmp(name, "--out") == 0) {
            out = value;
            ok = 1;
        } else if (strcmp(name, "--stays") == 0) {
            ok = parse_int(name, value, &cfg.stays);
        } else if (strcmp(name, "--seed") == 0) {
            ok = parse_u64(name, value, &cfg.seed);
        } else if (strcmp(name, "--note-dim") == 0) {
            ok = parse_int(name, value, &cfg.note_dim);
        } else if (strcmp(name, "--image-feature-dim") == 0) {
            ok = parse_int(name, value, &cfg.image_feature_dim);
        } else if (strcmp(name, "--image-size") == 0) {
            ok = parse_int(name, value, &cfg.image_size);
        } else if (strcmp(name, "--missing-notes") == 0) {
            ok = parse_double(name, value, &cfg.missing_notes);
        } else if (strcmp(name, "--missing-images") == 0) {
            ok = parse_double(name, value, &cfg.missing_images);
        } else if (strcmp(name, "--missing-labs") == 0) {
            ok = parse_double(name, value, &cfg.missing_labs);
        } else if (strcmp(name, "--window-h") == 0) {
            ok = parse_double(name, value, &cfg.window_h);
        } else {
            fprintf(stderr, "fusemoe synth: unknown option %s\n", name);
            synth_usage(stderr);
            return 2;
        }
        if (!ok) return 2;
    }
    if (!out || !*out) {
        fprintf(stderr, "fusemoe synth: --out DIR is required\n");
        synth_usage(stderr);
        return 2;
    }
    FmError err;
    fm_error_clear(&err);
    if (fm_synth_config_check(&cfg, &err) != FM_OK) {
        fprintf(stderr, "fusemoe synth: --%s: %s\n", err.where, err.message);
        return 2;
    }

    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    FmSynthSummary s;
    if (fm_synth_write(&cfg, out, &s, &err) != FM_OK) {
        fprintf(stderr, "fusemoe synth: ");
        fm_error_print(&err, stderr);
        return 1;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);

    long n = s.stays, known_los = s.stays - s.los_unknown;
    printf("fusemoe synth: wrote %d stays to %s in %.2f s (seed %llu)\n", s.stays, out, secs,
           (unsigned long long)cfg.seed);
    printf("  observations  %zu rows (%zu recording artifacts outside the ranges)\n", s.observations,
           s.artifacts);
    printf("  labs          in %d stays (%.1f%%)\n", s.stays_with_labs, percent(s.stays_with_labs, n));
    printf("  notes         %zu in %d stays (%.1f%%), width %d\n", s.notes, s.stays_with_notes,
           percent(s.stays_with_notes, n), cfg.note_dim);
    printf("  images        %zu in %d stays (%.1f%%), %d x %d PNG, features of width %d\n", s.images,
           s.stays_with_images, percent(s.stays_with_images, n), cfg.image_size, cfg.image_size,
           cfg.image_feature_dim);
    printf("  mortality     %.1f%%\n", percent(s.deaths, n));
    printf("  LOS > 7 days  %.1f%% (of %ld stays with a known LOS)\n", percent(s.los_over_7d, known_los),
           known_los);
    printf("  phenotypes   ");
    for (int k = 0; k < FM_SYNTH_N_PHENOTYPES; k++)
        printf(" %s %.1f%%%s", FM_SYNTH_PHENOTYPE_NAMES[k], percent(s.phenotype[k], n),
               k + 1 < FM_SYNTH_N_PHENOTYPES ? "," : "\n");
    size_t need = fm_synth_prepare_command(&cfg, out, NULL, 0);
    char *cmd = fm_malloc(need + 1);
    if (!cmd) {
        fprintf(stderr, "fusemoe synth: out of memory\n");
        return 1;
    }
    fm_synth_prepare_command(&cfg, out, cmd, need + 1);
    printf("next, build the cohort with:\n  %s\n", cmd);
    fm_free(cmd);
    return 0;
}
