/* Helpers shared by the study commands (train, eval, predict, ablate, inspect): reading a
 * study configuration with overrides, option values, error reports and the summary of a
 * metrics.json. */
#ifndef FM_CLI_CMD_COMMON_H
#define FM_CLI_CMD_COMMON_H

#include <stdint.h>
#include <stdio.h>

#include "src/config.h"
#include "src/error.h"

/* Exit status of a run stopped by SIGINT/SIGTERM after saving what it needs to resume. */
#define FM_EXIT_INTERRUPTED 3

/* Prints "fusemoe <cmd>: <where>: <message>" on stderr. */
void fm_cli_report(const char *cmd, const FmError *err);

/* The exit status for a failed status: FM_EXIT_INTERRUPTED for FM_ERR_INTERRUPTED, else 1. */
int fm_cli_exit_status(FmStatus st);

/* Parses an option value; on failure prints "fusemoe <cmd>: <opt>: expected ..." and returns 0. */
int fm_cli_parse_long(const char *cmd, const char *opt, const char *s, long min, long max, long *out);
int fm_cli_parse_double(const char *cmd, const char *opt, const char *s, double min, double max, double *out);

/* Splits s (modified in place) at any character of `sep` into at most max non-empty items;
 * returns their count, or -1 when there are more than max. */
int fm_cli_split(char *s, const char *sep, char **items, int max);

/* Prints the headline metrics of metrics.json at `path` to `out`: per task its main metrics
 * with their 95% intervals. Silent when the file cannot be read. */
void fm_cli_print_metrics(FILE *out, const char *path);

#endif
