/* TensorBoard event files and PNG output, written by Ember itself. */
#ifndef EMBER_SUMMARY_H
#define EMBER_SUMMARY_H

#include "core.h"
#include "graph.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct em_summary_writer em_summary_writer;

/* Creates logdir (and parents) and events.out.tfevents.<time>.<host> in it
 * (".1", ".2", ... appended if a writer opened the same name this second).
 * Events are buffered and written every 2 seconds (checked on each write), at
 * 1 MiB, and on flush and close, always as whole records: a killed process
 * leaves a file TensorBoard reads up to the last record written. The file is
 * appended to, never replaced: a write that fails (a full disk) keeps what
 * did not reach it for the next flush or close, so no record is torn inside
 * the file. A writer may be shared by threads. All functions return 0, or -1
 * with an error set. PNG files and plots are written as every file Ember
 * writes (ember/io.h): whole or not at all. */
em_summary_writer *em_summary_writer_open(const char *logdir);
int em_summary_writer_flush(em_summary_writer *w);
/* Flushes and closes; NULL is fine. */
int em_summary_writer_close(em_summary_writer *w);
/* Path of the event file. BORROWED. */
const char *em_summary_writer_path(const em_summary_writer *w);

/* value is stored as a float (simple_value), as TensorFlow does. */
int em_summary_scalar(em_summary_writer *w, const char *tag, int64_t step, double value);
/* values: any dtype and shape, bucketed as TensorFlow's default histogram
 * (limits growing by 1.1x from 1e-12, mirrored for negatives). A NaN or
 * infinity is an error, as in TensorFlow. */
int em_summary_histogram(em_summary_writer *w, const char *tag, int64_t step, em_tensor *values);
/* images: [H,W], [H,W,C] or [N,H,W,C] with C = 1 (gray), 3 (RGB) or 4; uint8,
 * or float in [0,1] (scaled by 255, clamped). One image ([H,W], [H,W,C]) is
 * tagged `tag`. A batch writes its first max_images (>= 1) images in one
 * event, tagged "tag/image/0", "tag/image/1", ... ("tag/image" when
 * max_images is 1), as TensorFlow 1 does. */
int em_summary_image(em_summary_writer *w, const char *tag, int64_t step, em_tensor *images, int max_images);
/* UTF-8 text (TensorBoard renders it as Markdown), as tf.summary.text. */
int em_summary_text(em_summary_writer *w, const char *tag, int64_t step, const char *text);

/* A traced graph for TensorBoard's Graphs tab: one NodeDef per node, named
 * "scope/sub/op_N" (grouped by name scope), with its op (or Placeholder,
 * Variable, Const), inputs, dtype ("dtype" on sources, "T" on ops) and
 * "_output_shapes" (unknown dims as -1), in an Event's graph_def. */
int em_summary_graph(em_summary_writer *w, const em_graph *g);

/* Writes a tensor ([H,W], [H,W,C] uint8 or float in [0,1], C = 1, 3, 4) as a PNG file. */
int em_write_png(const char *path, em_tensor *image);
/* Reads a PNG file (any bit depth and colour type) as uint8 [H,W,C]: C = 1
 * for grey, 2 grey and alpha, 3 RGB, 4 RGBA, as the file holds. NEW. */
em_tensor *em_read_png(const char *path);

/* ---- plots ---- */
typedef struct em_series {
    const char *label;
    const double *x; /* NULL: 0, 1, 2, ... */
    const double *y;
    int n;
} em_series;

/* A line plot of n series (colored in order) with nice ticks, grid, title,
 * axis labels (any may be NULL) and a legend of the labelled series, placed
 * in the corner that hides the least data. NaN or infinite points leave gaps.
 * width x height from 160x120 to 16384x16384 pixels. Text is ASCII. */
int em_plot_png(const char *path, const char *title, const char *xlabel, const char *ylabel,
                int n, const em_series *series, int width, int height);
/* Tiles the rows of a [N, h*w] (or [N,h,w]) numeric tensor as h x w images in
 * a gray grid with 1-pixel white gaps, each normalised to its own min..max
 * (e.g. the 500 rows of a first layer's weights). columns <= 0: about sqrt(N). */
int em_plot_image_grid(const char *path, em_tensor *tiles, int h, int w, int columns);

#ifdef __cplusplus
}
#endif
#endif
