/* Training progress on stderr: a bar redrawn in place on a terminal, plain lines otherwise
 * (logs, batch schedulers), at most one line per `plain_every_s` seconds plus the last. */
#ifndef FM_CLI_PROGRESS_H
#define FM_CLI_PROGRESS_H

#include <stdio.h>

typedef struct {
    FILE *out;
    int tty;
    double start_s;      /* monotonic start time */
    double last_draw_s;
    double plain_every_s;
    long total;          /* units of work in all (e.g. optimiser steps of the whole run) */
} FmProgress;

/* Starts timing `total` units of work; writes to `out`. */
void fm_progress_begin(FmProgress *p, FILE *out, long total);

/* Reports that `done` units are complete, with the epoch, the running loss, and the stays/s
 * throughput; redraws (terminal) or prints a line (otherwise) when due. Time left is
 * extrapolated from the elapsed time. force != 0 draws now. */
void fm_progress_update(FmProgress *p, long done, int epoch, int epochs, double loss,
                        double stays_per_s, int force);

/* Ends the bar (newline on a terminal). */
void fm_progress_end(FmProgress *p);

/* Seconds on the monotonic clock. */
double fm_progress_now(void);

#endif
