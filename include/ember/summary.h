/* TensorBoard event files and PNG output, written by Ember itself. */
#ifndef EMBER_SUMMARY_H
#define EMBER_SUMMARY_H

#include "core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct em_summary_writer em_summary_writer;

/* Creates logdir (and parents) and events.out.tfevents.<time>.<host> in it. */
em_summary_writer *em_summary_writer_open(const char *logdir);
int em_summary_writer_flush(em_summary_writer *w);
/* Flushes and closes; NULL is fine. */
int em_summary_writer_close(em_summary_writer *w);
/* Path of the event file. BORROWED. */
const char *em_summary_writer_path(const em_summary_writer *w);

int em_summary_scalar(em_summary_writer *w, const char *tag, int64_t step, double value);
int em_summary_histogram(em_summary_writer *w, const char *tag, int64_t step, em_tensor *values);
/* images: [H,W], [H,W,C] or [N,H,W,C] with C = 1 (gray), 3 (RGB) or 4; uint8,
 * or float in [0,1]. A batch writes up to max_images images, tagged
 * "tag/image/0", "tag/image/1", ... as TensorFlow does. */
int em_summary_image(em_summary_writer *w, const char *tag, int64_t step, em_tensor *images, int max_images);
int em_summary_text(em_summary_writer *w, const char *tag, int64_t step, const char *text);

/* Writes a tensor ([H,W], [H,W,C] uint8 or float in [0,1]) as a PNG file. */
int em_write_png(const char *path, em_tensor *image);

/* ---- plots ---- */
typedef struct em_series {
    const char *label;
    const double *x; /* NULL: 0, 1, 2, ... */
    const double *y;
    int n;
} em_series;

/* A line plot of n series with axes, ticks, labels and a legend. */
int em_plot_png(const char *path, const char *title, const char *xlabel, const char *ylabel,
                int n, const em_series *series, int width, int height);
/* Tiles the rows of a [N, h*w] (or [N,h,w]) float tensor as h x w images in a
 * grid, each normalised to its own min..max. */
int em_plot_image_grid(const char *path, em_tensor *tiles, int h, int w, int columns);

#ifdef __cplusplus
}
#endif
#endif
