/* TensorBoard event files written without a protobuf library: the few
 * messages TensorBoard reads (Event, Summary, HistogramProto, Summary.Image,
 * a string TensorProto for text, GraphDef) are encoded by hand, framed as
 * TFRecords. Field numbers follow tensorflow/core/util/event.proto and
 * tensorflow/core/framework/{summary,histogram,tensor,tensor_shape,graph,
 * node_def,attr_value,types}.proto (as shipped in tensorboard/compat/proto). */
#include "file.h"
#include "crc32c.h"
#include "graph/export.h"
#include "image.h"
#include "protobuf.h"

#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define FLUSH_SECONDS 2.0
#define FLUSH_BYTES (1 << 20)

/* Field numbers. */
enum { EVENT_WALL_TIME = 1, EVENT_STEP = 2, EVENT_FILE_VERSION = 3, EVENT_GRAPH_DEF = 4, EVENT_SUMMARY = 5 };
enum { SUMMARY_VALUE = 1 };
enum { VALUE_TAG = 1, VALUE_SIMPLE = 2, VALUE_IMAGE = 4, VALUE_HISTO = 5, VALUE_TENSOR = 8, VALUE_METADATA = 9 };
enum { IMAGE_HEIGHT = 1, IMAGE_WIDTH = 2, IMAGE_COLORSPACE = 3, IMAGE_ENCODED = 4 };
enum { HISTO_MIN = 1, HISTO_MAX, HISTO_NUM, HISTO_SUM, HISTO_SUM_SQUARES, HISTO_BUCKET_LIMIT, HISTO_BUCKET };
enum { METADATA_PLUGIN_DATA = 1, PLUGIN_NAME = 1 };
enum { TENSOR_DTYPE = 1, TENSOR_SHAPE = 2, TENSOR_STRING_VAL = 8, DT_STRING = 7 };
enum { SHAPE_DIM = 2, SHAPE_UNKNOWN_RANK = 3, DIM_SIZE = 1 };
enum { GRAPH_NODE = 1 };
enum { NODE_NAME = 1, NODE_OP = 2, NODE_INPUT = 3, NODE_DEVICE = 4, NODE_ATTR = 5, ATTR_KEY = 1, ATTR_VALUE = 2 };
enum { ATTRV_LIST = 1, ATTRV_TYPE = 6, LIST_SHAPE = 7 };

/* ---- the writer ---- */

struct em_summary_writer {
    pthread_mutex_t lock;
    int fd;
    char *path;
    pb pending; /* whole records not yet written */
    double last_flush;
};

static double now(clockid_t clock) {
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Writes the pending records; a short write keeps the rest for next time. */
static int flush_locked(em_summary_writer *w) {
    size_t done = 0;
    while (done < w->pending.n) {
        ssize_t r = write(w->fd, w->pending.p + done, w->pending.n - done);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            em__error("summary: cannot write %s: %s", w->path, r < 0 ? strerror(errno) : "no progress");
            memmove(w->pending.p, w->pending.p + done, w->pending.n - done);
            w->pending.n -= done;
            return -1;
        }
        done += (size_t)r;
    }
    w->pending.n = 0;
    w->last_flush = now(CLOCK_MONOTONIC);
    return 0;
}

/* Frames an Event as one TFRecord: length, masked CRC of the length, data,
 * masked CRC of the data. */
static int append_record(em_summary_writer *w, const char *op, pb *event, bool flush_now) {
    if (event->oom) {
        pb_free(event);
        em__error("%s: out of memory encoding an event", op);
        return -1;
    }
    uint8_t len[8];
    for (int i = 0; i < 8; i++) len[i] = (uint8_t)((uint64_t)event->n >> (8 * i));
    pthread_mutex_lock(&w->lock);
    size_t before = w->pending.n;
    pb_put(&w->pending, len, 8);
    put_le(&w->pending, em__crc32c_masked(len, 8), 4);
    pb_put(&w->pending, event->p, event->n);
    put_le(&w->pending, em__crc32c_masked(event->p, event->n), 4);
    int rc = 0;
    if (w->pending.oom) {
        w->pending.oom = false;
        w->pending.n = before;
        em__error("%s: out of memory buffering an event for %s", op, w->path);
        rc = -1;
    } else if (flush_now || w->pending.n >= FLUSH_BYTES || now(CLOCK_MONOTONIC) - w->last_flush >= FLUSH_SECONDS) {
        rc = flush_locked(w);
    }
    pthread_mutex_unlock(&w->lock);
    pb_free(event);
    return rc;
}

static void event_header(pb *e, int64_t step) {
    pb_double(e, EVENT_WALL_TIME, now(CLOCK_REALTIME));
    pb_int(e, EVENT_STEP, step);
}

/* Wraps a Summary in an Event and appends it. */
static int write_summary(em_summary_writer *w, const char *op, int64_t step, pb *summary) {
    pb e = {0};
    event_header(&e, step);
    pb_msg(&e, EVENT_SUMMARY, summary);
    return append_record(w, op, &e, false);
}

em_summary_writer *em_summary_writer_open(const char *logdir) {
    const char *op = "summary_writer_open";
    if (!logdir || !logdir[0]) {
        em__error("%s: logdir is %s", op, logdir ? "empty" : "NULL");
        return NULL;
    }
    int err = em__make_dirs(logdir);
    if (err) {
        em__error("%s: cannot create directory %s: %s", op, logdir, strerror(err));
        return NULL;
    }
    char host[256] = "localhost";
    if (gethostname(host, sizeof host - 1)) strcpy(host, "localhost");
    host[sizeof host - 1] = '\0';
    em_summary_writer *w = calloc(1, sizeof *w);
    size_t size = strlen(logdir) + strlen(host) + 64;
    if (w) w->path = malloc(size);
    if (!w || !w->path) {
        free(w);
        em__error("%s: out of memory", op);
        return NULL;
    }
    /* A second writer in the same second and directory gets a suffix rather
     * than clobbering the first one's file. */
    long long t = (long long)time(NULL);
    w->fd = -1;
    for (int k = 0; k < 1000 && w->fd < 0; k++) {
        int len = snprintf(w->path, size, "%s/events.out.tfevents.%010lld.%s", logdir, t, host);
        if (k) snprintf(w->path + len, size - (size_t)len, ".%d", k);
        w->fd = open(w->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (w->fd < 0 && errno != EEXIST) break;
    }
    if (w->fd < 0) {
        em__error("%s: cannot create %s: %s", op, w->path, strerror(errno));
        free(w->path);
        free(w);
        return NULL;
    }
    pthread_mutex_init(&w->lock, NULL);
    w->last_flush = now(CLOCK_MONOTONIC);
    pb e = {0};
    event_header(&e, 0);
    pb_str(&e, EVENT_FILE_VERSION, "brain.Event:2");
    if (append_record(w, op, &e, true)) {
        em_summary_writer_close(w);
        return NULL;
    }
    return w;
}

int em_summary_writer_flush(em_summary_writer *w) {
    if (!w) {
        em__error_null("summary_writer_flush: writer is NULL");
        return -1;
    }
    pthread_mutex_lock(&w->lock);
    int rc = flush_locked(w);
    pthread_mutex_unlock(&w->lock);
    return rc;
}

int em_summary_writer_close(em_summary_writer *w) {
    if (!w) return 0;
    int rc = flush_locked(w);
    if (close(w->fd) && !rc) {
        em__error("summary_writer_close: closing %s: %s", w->path, strerror(errno));
        rc = -1;
    }
    pthread_mutex_destroy(&w->lock);
    pb_free(&w->pending);
    free(w->path);
    free(w);
    return rc;
}

const char *em_summary_writer_path(const em_summary_writer *w) { return w ? w->path : NULL; }

static int check_args(const char *op, em_summary_writer *w, const char *tag) {
    if (!w) em__error_null("%s: writer is NULL", op);
    else if (!tag || !tag[0]) em__error("%s: tag is %s", op, tag ? "empty" : "NULL");
    return !w || !tag || !tag[0] ? -1 : 0;
}

int em_summary_scalar(em_summary_writer *w, const char *tag, int64_t step, double value) {
    if (check_args("summary_scalar", w, tag)) return -1;
    pb v = {0}, s = {0};
    pb_str(&v, VALUE_TAG, tag);
    pb_float(&v, VALUE_SIMPLE, (float)value);
    pb_msg(&s, SUMMARY_VALUE, &v);
    return write_summary(w, "summary_scalar", step, &s);
}

/* ---- histograms, bucketed exactly as TensorFlow's default histogram ---- */

/* TF's default limits: -DBL_MAX, -x_k..., 0, ..., x_k, DBL_MAX with x_0 = 1e-12
 * and x_{k+1} = 1.1 x_k below 1e20 (774 of them). Returns the count. */
#define MAX_POS 800
#define MAX_LIMITS (2 * MAX_POS + 3)
static int default_limits(double *lim) {
    double pos[MAX_POS];
    int n = 0;
    for (double v = 1e-12; v < 1e20 && n < MAX_POS; v *= 1.1) pos[n++] = v;
    int k = 0;
    lim[k++] = -DBL_MAX;
    for (int i = n - 1; i >= 0; i--) lim[k++] = -pos[i];
    lim[k++] = 0;
    for (int i = 0; i < n; i++) lim[k++] = pos[i];
    lim[k++] = DBL_MAX;
    return k;
}

/* The first limit greater than v (std::upper_bound), as TF's Histogram::Add. */
static int bucket_of(const double *lim, int n, double v) {
    int lo = 0, hi = n;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (lim[mid] > v) hi = mid;
        else lo = mid + 1;
    }
    return lo < n ? lo : n - 1;
}

static int encode_histogram(const char *op, const char *tag, em_tensor *t, pb *h) {
    double *lim = malloc(sizeof(double) * MAX_LIMITS * 2);
    if (!lim) {
        em__error("%s: out of memory", op);
        return -1;
    }
    double *count = lim + MAX_LIMITS;
    int nb = default_limits(lim);
    memset(count, 0, sizeof(double) * (size_t)nb);
    const char *data = em_data(t);
    if (!data) {
        free(lim);
        return -1;
    }
    em_dtype dt = (em_dtype)t->dtype;
    size_t es = em_dtype_size(dt);
    double mn = DBL_MAX, mx = -DBL_MAX, sum = 0, sum2 = 0;
    for (int64_t i = 0; i < t->numel; i++) {
        double v = em__read(data + (size_t)i * es, dt);
        if (!isfinite(v)) {
            em__error("%s: '%s' holds a non-finite value (%g at element %lld)", op, tag, v, (long long)i);
            free(lim);
            return -1;
        }
        count[bucket_of(lim, nb, v)] += 1;
        mn = fmin(mn, v), mx = fmax(mx, v), sum += v, sum2 += v * v;
    }
    pb_double(h, HISTO_MIN, mn);
    pb_double(h, HISTO_MAX, mx);
    pb_double(h, HISTO_NUM, (double)t->numel);
    pb_double(h, HISTO_SUM, sum);
    pb_double(h, HISTO_SUM_SQUARES, sum2);
    /* A run of empty buckets collapses into one with the run's last limit, as
     * TF's EncodeToProto does; the arrays are rewritten in place. */
    int m = 0;
    for (int i = 0; i < nb;) {
        double end = lim[i], c = count[i++];
        if (c <= 0)
            while (i < nb && count[i] <= 0) end = lim[i], c = count[i++];
        lim[m] = end, count[m++] = c;
    }
    pb_packed_doubles(h, HISTO_BUCKET_LIMIT, lim, (size_t)m);
    pb_packed_doubles(h, HISTO_BUCKET, count, (size_t)m);
    free(lim);
    return 0;
}

int em_summary_histogram(em_summary_writer *w, const char *tag, int64_t step, em_tensor *values) {
    const char *op = "summary_histogram";
    if (check_args(op, w, tag)) return -1;
    if (!values) return em__null_input(op), -1;
    pb h = {0}, v = {0}, s = {0};
    if (encode_histogram(op, tag, values, &h)) {
        pb_free(&h);
        return -1;
    }
    pb_str(&v, VALUE_TAG, tag);
    pb_msg(&v, VALUE_HISTO, &h);
    pb_msg(&s, SUMMARY_VALUE, &v);
    return write_summary(w, op, step, &s);
}

/* ---- images and text ---- */

int em_summary_image(em_summary_writer *w, const char *tag, int64_t step, em_tensor *images, int max_images) {
    const char *op = "summary_image";
    if (check_args(op, w, tag)) return -1;
    if (!images) return em__null_input(op), -1;
    if (max_images < 1) {
        em__error("%s: max_images must be at least 1, got %d", op, max_images);
        return -1;
    }
    int64_t n;
    int h, wd, c;
    if (em__image_geometry(op, images, true, &n, &h, &wd, &c)) return -1;
    uint8_t *px = em__image_pixels(op, images);
    if (!px) return -1;
    bool batch = images->ndim == 4;
    size_t per = (size_t)h * (size_t)wd * (size_t)c, tagsize = strlen(tag) + 32;
    char *name = malloc(tagsize);
    pb s = {0};
    int rc = name ? 0 : -1;
    if (!name) em__error("%s: out of memory", op);
    for (int64_t i = 0; i < n && i < max_images && !rc; i++) {
        void *png;
        size_t size;
        if ((rc = em__png_encode(op, px + (size_t)i * per, h, wd, c, &png, &size))) break;
        /* TF 1's names: "tag/image" for one image of a batch, else "tag/image/i" */
        if (!batch) snprintf(name, tagsize, "%s", tag);
        else if (max_images == 1) snprintf(name, tagsize, "%s/image", tag);
        else snprintf(name, tagsize, "%s/image/%lld", tag, (long long)i);
        pb im = {0}, v = {0};
        pb_int(&im, IMAGE_HEIGHT, h);
        pb_int(&im, IMAGE_WIDTH, wd);
        pb_int(&im, IMAGE_COLORSPACE, c);
        pb_bytes(&im, IMAGE_ENCODED, png, size);
        free(png);
        pb_str(&v, VALUE_TAG, name);
        pb_msg(&v, VALUE_IMAGE, &im);
        pb_msg(&s, SUMMARY_VALUE, &v);
    }
    free(px);
    free(name);
    if (rc) {
        pb_free(&s);
        return -1;
    }
    return write_summary(w, op, step, &s);
}

/* A scalar string tensor with the text plugin's metadata, as tf.summary.text. */
int em_summary_text(em_summary_writer *w, const char *tag, int64_t step, const char *text) {
    const char *op = "summary_text";
    if (check_args(op, w, tag)) return -1;
    if (!text) {
        em__error("%s: text is NULL", op);
        return -1;
    }
    pb plugin = {0}, meta = {0}, shape = {0}, tensor = {0}, v = {0}, s = {0};
    pb_str(&plugin, PLUGIN_NAME, "text");
    pb_msg(&meta, METADATA_PLUGIN_DATA, &plugin);
    pb_int(&tensor, TENSOR_DTYPE, DT_STRING);
    pb_msg(&tensor, TENSOR_SHAPE, &shape); /* no dims: a scalar */
    pb_str(&tensor, TENSOR_STRING_VAL, text);
    pb_str(&v, VALUE_TAG, tag);
    pb_msg(&v, VALUE_METADATA, &meta);
    pb_msg(&v, VALUE_TENSOR, &tensor);
    pb_msg(&s, SUMMARY_VALUE, &v);
    return write_summary(w, op, step, &s);
}

/* ---- graphs ---- */

/* TensorFlow's DataType enum, indexed by em_dtype. */
static const int tf_dtype[EM_DTYPE_COUNT] = {
    [EM_F32] = 1, [EM_F64] = 2, [EM_I32] = 3, [EM_I64] = 9, [EM_U8] = 4, [EM_BOOL] = 10, [EM_BF16] = 14, [EM_F16] = 19,
    [EM_I8] = 6,  [EM_I16] = 5, [EM_U16] = 17,
};

/* Appends one NodeDef.attr map entry. */
static void node_attr(pb *node, const char *key, pb *value) {
    pb entry = {0};
    pb_str(&entry, ATTR_KEY, key);
    pb_msg(&entry, ATTR_VALUE, value);
    pb_msg(node, NODE_ATTR, &entry);
}

static int encode_node(void *ctx, const em_graph_node *node) {
    pb n = {0}, type = {0}, shape = {0}, list = {0}, shapes = {0};
    pb_str(&n, NODE_NAME, node->name);
    pb_str(&n, NODE_OP, node->op);
    for (int i = 0; i < node->ninputs; i++) pb_str(&n, NODE_INPUT, node->inputs[i]);
    pb_str(&n, NODE_DEVICE, node->device); /* TensorBoard colours the graph by device */
    /* TF names a source's type "dtype" (Placeholder, VariableV2, Const) and
     * an op's input/output type "T". */
    pb_int(&type, ATTRV_TYPE, tf_dtype[node->dtype]);
    node_attr(&n, node->ninputs ? "T" : "dtype", &type);
    if (node->ndim < 0) pb_int(&shape, SHAPE_UNKNOWN_RANK, 1);
    for (int d = 0; d < node->ndim; d++) {
        pb dim = {0};
        pb_int(&dim, DIM_SIZE, node->shape[d]);
        pb_msg(&shape, SHAPE_DIM, &dim);
    }
    pb_msg(&list, LIST_SHAPE, &shape);
    pb_msg(&shapes, ATTRV_LIST, &list);
    node_attr(&n, "_output_shapes", &shapes);
    pb_msg(ctx, GRAPH_NODE, &n);
    return 0;
}

int em_summary_graph(em_summary_writer *w, const em_graph *g) {
    const char *op = "summary_graph";
    if (!w || !g) {
        em__error_null("%s: %s is NULL", op, w ? "graph" : "writer");
        return -1;
    }
    pb graph = {0}, e = {0};
    if (em__graph_visit(g, encode_node, &graph)) {
        pb_free(&graph);
        return -1;
    }
    event_header(&e, 0);
    pb_msg(&e, EVENT_GRAPH_DEF, &graph);
    return append_record(w, op, &e, false);
}
