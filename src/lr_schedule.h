/* Learning-rate schedules: constant or cosine decay, both after a linear warm-up.
 *
 *   warm-up (step < W):   lr = base * (step + 1) / W
 *   constant:             lr = base
 *   cosine:               lr = base * (f + (1 - f) * 0.5 * (1 + cos(pi * (step - W) / (S - W))))
 * where S is the total number of optimiser steps, W the warm-up steps and f the final fraction
 * of the base rate. Steps count optimiser updates from 0. */
#ifndef FM_LR_SCHEDULE_H
#define FM_LR_SCHEDULE_H

typedef enum { FM_SCHEDULE_CONSTANT, FM_SCHEDULE_COSINE } FmScheduleKind;

typedef struct {
    FmScheduleKind kind;
    float base_lr;
    long total_steps;     /* S >= 1 */
    long warmup_steps;    /* W, 0 <= W < S */
    float final_fraction; /* f in [0, 1], cosine only */
} FmLrSchedule;

/* The learning rate for optimiser step `step` (0-based). Steps past S keep the last value. */
float fm_lr_at(const FmLrSchedule *s, long step);

#endif
