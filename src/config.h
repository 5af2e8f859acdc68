/* The study configuration: INI files checked against a declarative schema.
 *
 * Every key the program knows is one line of the schema table in src/config.c: section, key,
 * type, default, bounds or allowed values, and a one-line description. Everything else
 * follows from that table: defaults, parsing and checking of files and `--set` overrides, the
 * resolved file written back, and the Markdown key table of the README.
 *
 * File format (parsed by libinih): `[section]` headers, `key = value` lines, comment lines
 * starting with `#` or `;`, and inline comments after ` ;` (a semicolon preceded by a space).
 * Leading indentation is ignored (there are no continuation lines). A line may hold at most
 * FM_CONFIG_MAX_LINE characters. Values by type:
 *   int     decimal integer ("128", "-3");             float  finite number ("4e-4", "0.1")
 *   bool    true/false, yes/no, on/off, 1/0 (any case); string the text after `=`, trimmed
 *   enum    one of the allowed names (case-sensitive)
 *   list    comma-separated items, trimmed ("mortality, phenotypes"); empty value = no item
 *   floats  comma-separated numbers ("1, 0.5")
 * Errors name their place, compiler style, in FmError.where and .message:
 *   where "study.ini:12", message "[model] gate: \"laplce\" is not one of laplace, gaussian, softmax"
 *   where "--set model.top_k", message "expected an integer, got \"four\""
 * and every problem is found before any work starts: the first error (by line) is returned
 * and the configuration is left exactly as it was. */
#ifndef FM_CONFIG_H
#define FM_CONFIG_H

#include <stddef.h>

#include "src/error.h"

/* Longest line (without its newline) a configuration file may hold: libinih's line buffer
 * (200 bytes) less the newline, carriage return and terminator it needs. */
#define FM_CONFIG_MAX_LINE 197

typedef enum {
    FM_CFG_INT,   /* long, bounds [min, max] */
    FM_CFG_FLOAT, /* double, bounds [min, max] */
    FM_CFG_BOOL,
    FM_CFG_STRING,
    FM_CFG_ENUM,      /* one of `allowed` */
    FM_CFG_LIST,      /* strings; each one of `allowed` unless allowed is NULL; the number of
                         items in [min, max]; no item twice */
    FM_CFG_FLOAT_LIST /* doubles, each in [min, max] */
} FmConfigType;

/* One key of the schema. */
typedef struct {
    const char *section;
    const char *key;
    FmConfigType type;
    const char *default_text; /* the default, written as in a file */
    double min, max;          /* see FmConfigType */
    const char *allowed;      /* "laplace|gaussian|softmax" for ENUM and LIST; else NULL */
    const char *doc;          /* one line, no trailing period */
} FmConfigKey;

/* The schema (a static table) and its number of keys. */
const FmConfigKey *fm_config_schema(int *n_keys);

/* A resolved configuration: one value per schema key, in schema order. Read it through the
 * getters below. */
typedef struct FmConfigValue FmConfigValue;
typedef struct {
    int n;
    FmConfigValue *values;
} FmConfig;

/* Fills `cfg` with every default. Free with fm_config_free. On failure (FM_ERR_NOMEM) `cfg` is
 * empty. */
FmStatus fm_config_init(FmConfig *cfg, FmError *err);

/* Deep copy of `src` into `dst` (which is overwritten, not freed). */
FmStatus fm_config_copy(FmConfig *dst, const FmConfig *src, FmError *err);

/* Releases the values; the struct is left empty. NULL and empty configs are accepted. */
void fm_config_free(FmConfig *cfg);

/* Reads the INI file `path` over `cfg`: keys in the file replace the current values, the
 * others keep theirs. Fails (FM_ERR_IO when unreadable, FM_ERR_CONFIG otherwise) on a syntax
 * error, an unknown section or key, a key set twice in the file, a key outside any section, a
 * line longer than FM_CONFIG_MAX_LINE, or a value of the wrong type, out of range or not
 * allowed; `cfg` is then unchanged. Cross-key rules are checked by fm_config_check. */
FmStatus fm_config_load(FmConfig *cfg, const char *path, FmError *err);

/* As fm_config_load on INI text held in memory; `name` stands for the file in messages. */
FmStatus fm_config_load_string(FmConfig *cfg, const char *text, const char *name, FmError *err);

/* Applies one command-line override "section.key=value" (value trimmed, then parsed and
 * checked as in a file). Errors: where "--set section.key" (or "--set <argument>" when the
 * argument is not of that form), message as for files without the "[section] key: " prefix.
 * `cfg` is unchanged on failure. */
FmStatus fm_config_apply_set(FmConfig *cfg, const char *assignment, FmError *err);

/* Rules between keys: model.top_k <= model.experts; model.heads divides model.d_model and
 * model.time_dim; train.task_weights is empty or has one weight per data.tasks item. The error
 * is reported where the offending value was set (file line, --set, or default). Run it after
 * all files and overrides are applied, before any work. */
FmStatus fm_config_check(const FmConfig *cfg, FmError *err);

/* Getters by "section.key". Asking for a key the schema lacks, or with the wrong type, is a
 * programming error (FM_ASSERT). Returned strings belong to `cfg` and stay valid until it is
 * changed or freed. */
long fm_config_int(const FmConfig *cfg, const char *name);
double fm_config_float(const FmConfig *cfg, const char *name);
int fm_config_bool(const FmConfig *cfg, const char *name);
const char *fm_config_string(const FmConfig *cfg, const char *name); /* STRING or ENUM */
int fm_config_enum(const FmConfig *cfg, const char *name);           /* index among the allowed names */
size_t fm_config_list_len(const FmConfig *cfg, const char *name);    /* LIST or FLOAT_LIST */
const char *fm_config_list_item(const FmConfig *cfg, const char *name, size_t i);
double fm_config_float_item(const FmConfig *cfg, const char *name, size_t i);
/* The value as it is written back (canonical text), for any type. */
const char *fm_config_text(const FmConfig *cfg, const char *name);
/* Where the value came from: "study.ini:12", "--set model.top_k", or "default". */
const char *fm_config_where(const FmConfig *cfg, const char *name);

/* The complete resolved configuration as INI text: every section and key in schema order,
 * each preceded by a "# " comment with its description, type, bounds and default. Loading
 * the text back gives the same values. The caller frees *text with fm_free. */
FmStatus fm_config_to_ini(const FmConfig *cfg, char **text, FmError *err);

/* Writes fm_config_to_ini's text to `path` atomically (temporary file, then rename). */
FmStatus fm_config_write(const FmConfig *cfg, const char *path, FmError *err);

/* The schema as a Markdown table (key, type, default, allowed values or range, description)
 * for the README. The caller frees *text with fm_free. */
FmStatus fm_config_schema_markdown(char **text, FmError *err);

#endif
