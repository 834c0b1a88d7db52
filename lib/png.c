/* PNG files through libpng (written, and read back for programs that
 * classify them), and line plots and image grids drawn by Ember
 * itself with a built-in 5x7 bitmap font, so a training run can leave
 * pictures behind without Python. */
#include "file.h"
#include "image.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <png.h>
#include <stdlib.h>

/* ---- image tensors and PNG encoding ---- */

int em__image_geometry(const char *op, em_tensor *t, bool batch_ok, int64_t *n, int *h, int *w, int *c) {
    char sb[128];
    int nd = t->ndim;
    const int64_t *s = t->shape;
    bool ok = nd == 2 || nd == 3 || (batch_ok && nd == 4);
    int64_t ch = nd == 2 ? 1 : s[nd - 1];
    if (!ok || (nd > 2 && ch != 1 && ch != 3 && ch != 4)) {
        em__error("%s: image must be %s with C = 1, 3 or 4, got %s", op, batch_ok ? "[H,W], [H,W,C] or [N,H,W,C]" : "[H,W] or [H,W,C]",
                  em_shape_str(em__shape_of(t), sb, sizeof sb));
        return -1;
    }
    int64_t hh = s[nd == 4], ww = s[(nd == 4) + 1];
    if (hh < 1 || ww < 1 || hh > INT32_MAX / 4 || ww > INT32_MAX / 4) {
        em__error("%s: image height and width must be 1 .. %d, got %s", op, INT32_MAX / 4,
                  em_shape_str(em__shape_of(t), sb, sizeof sb));
        return -1;
    }
    *n = nd == 4 ? s[0] : 1;
    *h = (int)hh;
    *w = (int)ww;
    *c = (int)ch;
    return 0;
}

uint8_t *em__image_pixels(const char *op, em_tensor *t) {
    em_dtype dt = (em_dtype)t->dtype;
    if (dt != EM_U8 && !em__is_float(dt)) {
        em__error("%s: image must be uint8 or float in [0,1], got %s", op, em_dtype_name(dt));
        return NULL;
    }
    const void *src = em_data(t);
    if (!src) return NULL;
    size_t n = (size_t)t->numel;
    uint8_t *px = malloc(n ? n : 1);
    if (!px) {
        em__error("%s: out of memory for %zu pixels", op, n);
        return NULL;
    }
    if (dt == EM_U8) {
        memcpy(px, src, n);
        return px;
    }
    for (size_t i = 0; i < n; i++) {
        double v = em__read((const char *)src + i * em_dtype_size(dt), dt);
        px[i] = v > 0 ? (v < 1 ? (uint8_t)lrint(v * 255) : 255) : 0; /* NaN fails v > 0 */
    }
    return px;
}

int em__png_encode(const char *op, const uint8_t *px, int h, int w, int c, void **png, size_t *size) {
    static const png_uint_32 formats[5] = {0, PNG_FORMAT_GRAY, PNG_FORMAT_GA, PNG_FORMAT_RGB, PNG_FORMAT_RGBA};
    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    img.width = (png_uint_32)w;
    img.height = (png_uint_32)h;
    img.format = formats[c];
    png_alloc_size_t bytes = 0;
    /* The first call measures, the second writes. */
    if (!png_image_write_to_memory(&img, NULL, &bytes, 0, px, 0, NULL)) goto fail;
    *png = malloc(bytes);
    if (!*png) {
        png_image_free(&img);
        em__error("%s: out of memory for a %zu-byte PNG", op, (size_t)bytes);
        return -1;
    }
    if (!png_image_write_to_memory(&img, *png, &bytes, 0, px, 0, NULL)) {
        free(*png);
        *png = NULL;
        goto fail;
    }
    *size = bytes;
    return 0;
fail:
    em__error("%s: PNG encoding of a %dx%dx%d image failed: %s", op, h, w, c, img.message);
    png_image_free(&img);
    return -1;
}

static int save_png(const char *op, const char *path, const uint8_t *px, int h, int w, int c) {
    void *png;
    size_t size;
    if (em__png_encode(op, px, h, w, c, &png, &size)) return -1;
    int rc = em__write_file_atomic(op, path, png, size);
    free(png);
    return rc;
}

em_tensor *em_read_png(const char *path) {
    if (!path) {
        em__error("read_png: path is NULL");
        return NULL;
    }
    png_image img = {.version = PNG_IMAGE_VERSION};
    if (!png_image_begin_read_from_file(&img, path)) {
        em__error("read_png: %s: %s", path, img.message);
        png_image_free(&img);
        return NULL;
    }
    /* 8 bits a sample, the file's channels, no colour map */
    img.format &= ~(png_uint_32)(PNG_FORMAT_FLAG_COLORMAP | PNG_FORMAT_FLAG_LINEAR);
    int c = (int)PNG_IMAGE_SAMPLE_CHANNELS(img.format);
    em_tensor *t = em__alloc(EM_U8, 3, (int64_t[]){img.height, img.width, c});
    if (!t) {
        png_image_free(&img);
        return NULL;
    }
    if (!png_image_finish_read(&img, NULL, t->data, 0, NULL)) {
        em__error("read_png: %s: %s", path, img.message);
        png_image_free(&img);
        em__unref(t);
        return NULL;
    }
    return em__own(t);
}

int em_write_png(const char *path, em_tensor *image) {
    if (!path) {
        em__error("write_png: path is NULL");
        return -1;
    }
    if (!image) return em__null_input("write_png"), -1;
    int64_t n;
    int h, w, c;
    if (em__image_geometry("write_png", image, false, &n, &h, &w, &c)) return -1;
    uint8_t *px = em__image_pixels("write_png", image);
    if (!px) return -1;
    int rc = save_png("write_png", path, px, h, w, c);
    free(px);
    return rc;
}

/* ---- font: ASCII 32..126, 5 columns x 8 rows (row 7 holds descenders);
 * bit 4 of a row byte is the leftmost column. ---- */

#define GLYPH_W 5
#define GLYPH_H 8
#define CELL_W 6 /* one column of spacing */
#define CAP_H 7  /* height above the baseline */

static const uint8_t font[95][GLYPH_H] = {
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00}, /*   */
    {0x04, 0x04, 0x04, 0x04, 0x04, 0x00, 0x04, 0x00}, /* ! */
    {0x0A, 0x0A, 0x0A, 0x00, 0x00, 0x00, 0x00, 0x00}, /* " */
    {0x0A, 0x0A, 0x1F, 0x0A, 0x1F, 0x0A, 0x0A, 0x00}, /* # */
    {0x04, 0x0F, 0x14, 0x0E, 0x05, 0x1E, 0x04, 0x00}, /* $ */
    {0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03, 0x00}, /* % */
    {0x0C, 0x12, 0x14, 0x08, 0x15, 0x12, 0x0D, 0x00}, /* & */
    {0x04, 0x04, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00}, /* ' */
    {0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02, 0x00}, /* ( */
    {0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08, 0x00}, /* ) */
    {0x00, 0x04, 0x15, 0x0E, 0x15, 0x04, 0x00, 0x00}, /* * */
    {0x00, 0x04, 0x04, 0x1F, 0x04, 0x04, 0x00, 0x00}, /* + */
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x04, 0x08}, /* , */
    {0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00, 0x00}, /* - */
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C, 0x00}, /* . */
    {0x00, 0x01, 0x02, 0x04, 0x08, 0x10, 0x00, 0x00}, /* / */
    {0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E, 0x00}, /* 0 */
    {0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E, 0x00}, /* 1 */
    {0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F, 0x00}, /* 2 */
    {0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E, 0x00}, /* 3 */
    {0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02, 0x00}, /* 4 */
    {0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E, 0x00}, /* 5 */
    {0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E, 0x00}, /* 6 */
    {0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08, 0x00}, /* 7 */
    {0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E, 0x00}, /* 8 */
    {0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C, 0x00}, /* 9 */
    {0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x00, 0x00}, /* : */
    {0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x04, 0x08}, /* ; */
    {0x02, 0x04, 0x08, 0x10, 0x08, 0x04, 0x02, 0x00}, /* < */
    {0x00, 0x00, 0x1F, 0x00, 0x1F, 0x00, 0x00, 0x00}, /* = */
    {0x08, 0x04, 0x02, 0x01, 0x02, 0x04, 0x08, 0x00}, /* > */
    {0x0E, 0x11, 0x01, 0x02, 0x04, 0x00, 0x04, 0x00}, /* ? */
    {0x0E, 0x11, 0x01, 0x0D, 0x15, 0x15, 0x0E, 0x00}, /* @ */
    {0x0E, 0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x00}, /* A */
    {0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E, 0x00}, /* B */
    {0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E, 0x00}, /* C */
    {0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C, 0x00}, /* D */
    {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F, 0x00}, /* E */
    {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10, 0x00}, /* F */
    {0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F, 0x00}, /* G */
    {0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11, 0x00}, /* H */
    {0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E, 0x00}, /* I */
    {0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C, 0x00}, /* J */
    {0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11, 0x00}, /* K */
    {0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F, 0x00}, /* L */
    {0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11, 0x00}, /* M */
    {0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11, 0x00}, /* N */
    {0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E, 0x00}, /* O */
    {0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10, 0x00}, /* P */
    {0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D, 0x00}, /* Q */
    {0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11, 0x00}, /* R */
    {0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E, 0x00}, /* S */
    {0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x00}, /* T */
    {0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E, 0x00}, /* U */
    {0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04, 0x00}, /* V */
    {0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A, 0x00}, /* W */
    {0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11, 0x00}, /* X */
    {0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04, 0x00}, /* Y */
    {0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F, 0x00}, /* Z */
    {0x0E, 0x08, 0x08, 0x08, 0x08, 0x08, 0x0E, 0x00}, /* [ */
    {0x00, 0x10, 0x08, 0x04, 0x02, 0x01, 0x00, 0x00}, /* \ */
    {0x0E, 0x02, 0x02, 0x02, 0x02, 0x02, 0x0E, 0x00}, /* ] */
    {0x04, 0x0A, 0x11, 0x00, 0x00, 0x00, 0x00, 0x00}, /* ^ */
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1F, 0x00}, /* _ */
    {0x08, 0x04, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00}, /* ` */
    {0x00, 0x00, 0x0E, 0x01, 0x0F, 0x11, 0x0F, 0x00}, /* a */
    {0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x1E, 0x00}, /* b */
    {0x00, 0x00, 0x0E, 0x10, 0x10, 0x11, 0x0E, 0x00}, /* c */
    {0x01, 0x01, 0x0D, 0x13, 0x11, 0x11, 0x0F, 0x00}, /* d */
    {0x00, 0x00, 0x0E, 0x11, 0x1F, 0x10, 0x0E, 0x00}, /* e */
    {0x06, 0x09, 0x08, 0x1C, 0x08, 0x08, 0x08, 0x00}, /* f */
    {0x00, 0x00, 0x0F, 0x11, 0x11, 0x0F, 0x01, 0x0E}, /* g */
    {0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x11, 0x00}, /* h */
    {0x04, 0x00, 0x0C, 0x04, 0x04, 0x04, 0x0E, 0x00}, /* i */
    {0x02, 0x00, 0x06, 0x02, 0x02, 0x02, 0x12, 0x0C}, /* j */
    {0x10, 0x10, 0x12, 0x14, 0x18, 0x14, 0x12, 0x00}, /* k */
    {0x0C, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E, 0x00}, /* l */
    {0x00, 0x00, 0x1A, 0x15, 0x15, 0x11, 0x11, 0x00}, /* m */
    {0x00, 0x00, 0x16, 0x19, 0x11, 0x11, 0x11, 0x00}, /* n */
    {0x00, 0x00, 0x0E, 0x11, 0x11, 0x11, 0x0E, 0x00}, /* o */
    {0x00, 0x00, 0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10}, /* p */
    {0x00, 0x00, 0x0F, 0x11, 0x11, 0x0F, 0x01, 0x01}, /* q */
    {0x00, 0x00, 0x16, 0x19, 0x10, 0x10, 0x10, 0x00}, /* r */
    {0x00, 0x00, 0x0E, 0x10, 0x0E, 0x01, 0x1E, 0x00}, /* s */
    {0x08, 0x08, 0x1C, 0x08, 0x08, 0x09, 0x06, 0x00}, /* t */
    {0x00, 0x00, 0x11, 0x11, 0x11, 0x13, 0x0D, 0x00}, /* u */
    {0x00, 0x00, 0x11, 0x11, 0x11, 0x0A, 0x04, 0x00}, /* v */
    {0x00, 0x00, 0x11, 0x11, 0x15, 0x15, 0x0A, 0x00}, /* w */
    {0x00, 0x00, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x00}, /* x */
    {0x00, 0x00, 0x11, 0x11, 0x11, 0x0F, 0x01, 0x0E}, /* y */
    {0x00, 0x00, 0x1F, 0x02, 0x04, 0x08, 0x1F, 0x00}, /* z */
    {0x02, 0x04, 0x04, 0x08, 0x04, 0x04, 0x02, 0x00}, /* { */
    {0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x00}, /* | */
    {0x08, 0x04, 0x04, 0x02, 0x04, 0x04, 0x08, 0x00}, /* } */
    {0x00, 0x00, 0x08, 0x15, 0x02, 0x00, 0x00, 0x00}, /* ~ */
};

/* ---- an RGB canvas ---- */

typedef struct rgb {
    uint8_t r, g, b;
} rgb;

typedef struct canvas {
    int w, h;
    uint8_t *px; /* w * h * 3 */
} canvas;

static inline int imin(int a, int b) { return a < b ? a : b; }
static inline int imax(int a, int b) { return a > b ? a : b; }

static void blend(canvas *cv, int x, int y, rgb c, float a) {
    if (x < 0 || y < 0 || x >= cv->w || y >= cv->h || a <= 0) return;
    if (a > 1) a = 1;
    uint8_t *p = cv->px + ((size_t)y * (size_t)cv->w + (size_t)x) * 3;
    p[0] = (uint8_t)lrintf(p[0] + (c.r - p[0]) * a);
    p[1] = (uint8_t)lrintf(p[1] + (c.g - p[1]) * a);
    p[2] = (uint8_t)lrintf(p[2] + (c.b - p[2]) * a);
}

/* Fills [x0,x1) x [y0,y1). */
static void fill(canvas *cv, int x0, int y0, int x1, int y1, rgb c) {
    for (int y = imax(y0, 0); y < imin(y1, cv->h); y++)
        for (int x = imax(x0, 0); x < imin(x1, cv->w); x++) blend(cv, x, y, c, 1);
}

static int text_width(const char *s, int scale) {
    int n = (int)strlen(s);
    return n ? (n * CELL_W - 1) * scale : 0;
}

/* Draws s with its top-left corner at (x, y); vertical text reads bottom to
 * top with (x, y) then the bottom-left corner. */
static void draw_text(canvas *cv, int x, int y, const char *s, int scale, rgb c, bool vertical) {
    for (int i = 0; s[i]; i++) {
        unsigned ch = (unsigned char)s[i];
        const uint8_t *g = font[(ch >= 32 && ch <= 126 ? ch : '?') - 32];
        for (int r = 0; r < GLYPH_H; r++)
            for (int col = 0; col < GLYPH_W; col++) {
                if (!(g[r] & (0x10 >> col))) continue;
                int along = (i * CELL_W + col) * scale;
                int bx = vertical ? x + r * scale : x + along;
                int by = vertical ? y - along - scale : y + r * scale;
                fill(cv, bx, by, bx + scale, by + scale, c);
            }
    }
}

/* ---- axes with nice ticks ---- */

typedef struct axis {
    double lo, hi, step;
    int64_t first; /* lo = first * step */
    int count;     /* ticks */
    int exp10;     /* step = {1,2,5} * 10^exp10 */
} axis;

/* Step number k >= 0: 1, 2, 5, 10, 20, 50, ... times 10^-12. */
static double nice_step(int k, int *exp10) {
    static const double mant[3] = {1, 2, 5};
    *exp10 = k / 3 - 12;
    return mant[k % 3] * pow(10, *exp10);
}

static void axis_set(axis *a, double dmin, double dmax, int k) {
    a->step = nice_step(k, &a->exp10);
    a->first = (int64_t)floor(dmin / a->step + 1e-9);
    int64_t last = (int64_t)ceil(dmax / a->step - 1e-9);
    if (last <= a->first) last = a->first + 1;
    a->lo = (double)a->first * a->step;
    a->hi = (double)last * a->step;
    a->count = (int)(last - a->first) + 1;
}

/* Tick label i: enough decimals for the step, exponent form for huge or tiny. */
static void tick_label(const axis *a, int i, char *buf, size_t size) {
    double v = (double)(a->first + i) * a->step;
    double big = fmax(fabs(a->lo), fabs(a->hi));
    if (big >= 1e6 || a->exp10 < -5) {
        int digits = (int)floor(log10(fmax(fabs(v), a->step))) - a->exp10 + 1;
        snprintf(buf, size, "%.*g", imax(1, imin(digits, 15)), v);
        char *e = strchr(buf, 'e');
        if (e) { /* 1e+06 -> 1e6, 2e-07 -> 2e-7 */
            char *d = e + 1, *src = e + 1;
            if (*src == '-') *d++ = *src++;
            else if (*src == '+') src++;
            while (*src == '0' && src[1]) src++;
            memmove(d, src, strlen(src) + 1);
        }
    } else {
        snprintf(buf, size, "%.*f", a->exp10 < 0 ? -a->exp10 : 0, v);
    }
    if (strspn(buf, "-0.") == strlen(buf) && buf[0] == '-') memmove(buf, buf + 1, strlen(buf)); /* no "-0" */
}

static int widest_label(const axis *a, int scale) {
    char b[64];
    int m = 0;
    for (int i = 0; i < a->count; i++) {
        tick_label(a, i, b, sizeof b);
        m = imax(m, text_width(b, scale));
    }
    return m;
}

/* Picks the smallest nice step (at least 1 if integer) giving at most
 * max_ticks ticks whose labels (for a horizontal axis) do not collide. */
static void axis_fit(axis *a, double dmin, double dmax, int pixels, int max_ticks, int scale, bool horizontal,
                     bool integer) {
    if (!(dmax > dmin)) { /* flat or no data: open a window around it */
        double pad = fabs(dmin) > 0 ? fabs(dmin) * 0.1 : 1;
        if (!isfinite(dmin)) dmin = 0, pad = 1;
        dmax = dmin + pad;
        dmin -= pad;
    }
    double range = isfinite(dmax - dmin) ? dmax - dmin : DBL_MAX;
    int k = (int)floor(log10(range / max_ticks) * 3) + 35; /* one step below the target */
    if (k < (integer ? 36 : 0)) k = integer ? 36 : 0; /* 36: step 1 */
    for (;; k++) {
        axis_set(a, dmin, dmax, k);
        if (a->count > max_ticks + 1) continue;
        int gap = a->count > 1 ? pixels / (a->count - 1) : pixels;
        int need = horizontal ? widest_label(a, scale) + 4 * CELL_W * scale : (GLYPH_H + 6) * scale;
        if (gap >= need || a->count <= 2) return;
    }
}

/* ---- line plots ---- */

static const rgb palette[10] = {
    {31, 119, 180}, {255, 127, 14}, {44, 160, 44},  {214, 39, 40},   {148, 103, 189},
    {140, 86, 75},  {227, 119, 194}, {127, 127, 127}, {188, 189, 34}, {23, 190, 207},
};

typedef struct rect {
    int x0, y0, x1, y1; /* pixel centres; x1, y1 inclusive */
} rect;

/* Coverage of a segment of half-width hw at the pixels near it, kept as the
 * maximum in mask (so overlapping joints do not darken). */
static void stroke(float *mask, int stride, rect clip, double ax, double ay, double bx, double by, double hw) {
    double dx = bx - ax, dy = by - ay, len2 = dx * dx + dy * dy;
    int x0 = imax(clip.x0, (int)floor(fmin(ax, bx) - hw - 1)), x1 = imin(clip.x1, (int)ceil(fmax(ax, bx) + hw + 1));
    int y0 = imax(clip.y0, (int)floor(fmin(ay, by) - hw - 1)), y1 = imin(clip.y1, (int)ceil(fmax(ay, by) + hw + 1));
    for (int y = y0; y <= y1; y++)
        for (int x = x0; x <= x1; x++) {
            double t = len2 > 0 ? ((x - ax) * dx + (y - ay) * dy) / len2 : 0;
            t = t < 0 ? 0 : t > 1 ? 1 : t;
            double ex = x - (ax + t * dx), ey = y - (ay + t * dy);
            double cov = hw + 0.5 - sqrt(ex * ex + ey * ey);
            float *m = &mask[(size_t)y * (size_t)stride + (size_t)x];
            if (cov > *m) *m = cov > 1 ? 1 : (float)cov;
        }
}

static void composite(canvas *cv, const float *mask, rect r, rgb c, float *ink) {
    for (int y = r.y0; y <= r.y1; y++)
        for (int x = r.x0; x <= r.x1; x++) {
            size_t i = (size_t)y * (size_t)cv->w + (size_t)x;
            if (mask[i] <= 0) continue;
            blend(cv, x, y, c, mask[i]);
            if (mask[i] > ink[i]) ink[i] = mask[i];
        }
}

static bool has_label(const em_series *s) { return s->label && s->label[0]; }

static double series_x(const em_series *s, int i) { return s->x ? s->x[i] : (double)i; }

/* The legend goes in the corner of the plot where it hides the least ink. */
static void draw_legend(canvas *cv, rect pr, int n, const em_series *series, int scale, const float *ink) {
    int rows = 0, wmax = 0;
    for (int i = 0; i < n; i++)
        if (has_label(&series[i])) rows++, wmax = imax(wmax, text_width(series[i].label, scale));
    if (!rows) return;
    int pad = 4 * scale, line = 16 * scale, rowh = (GLYPH_H + 4) * scale;
    int bw = pad * 3 + line + wmax, bh = pad * 2 + rows * rowh - 4 * scale;
    int margin = 6 * scale, best = 0;
    double least = INFINITY;
    for (int corner = 0; corner < 4; corner++) {
        int x = corner & 1 ? pr.x0 + margin : pr.x1 - margin - bw;
        int y = corner & 2 ? pr.y1 - margin - bh : pr.y0 + margin;
        double sum = 0;
        for (int yy = imax(y, 0); yy < imin(y + bh, cv->h); yy++)
            for (int xx = imax(x, 0); xx < imin(x + bw, cv->w); xx++) sum += ink[(size_t)yy * (size_t)cv->w + (size_t)xx];
        if (sum < least - 1e-9) least = sum, best = corner;
    }
    int x = best & 1 ? pr.x0 + margin : pr.x1 - margin - bw;
    int y = best & 2 ? pr.y1 - margin - bh : pr.y0 + margin;
    fill(cv, x, y, x + bw, y + bh, (rgb){255, 255, 255});
    rgb edge = {190, 190, 190};
    fill(cv, x, y, x + bw, y + 1, edge);
    fill(cv, x, y + bh - 1, x + bw, y + bh, edge);
    fill(cv, x, y, x + 1, y + bh, edge);
    fill(cv, x + bw - 1, y, x + bw, y + bh, edge);
    int row = 0;
    for (int i = 0; i < n; i++) {
        if (!has_label(&series[i])) continue;
        int ty = y + pad + row * rowh, mid = ty + (CAP_H * scale) / 2;
        int thick = imax(2, scale + 1);
        fill(cv, x + pad, mid - thick / 2, x + pad + line, mid - thick / 2 + thick, palette[i % 10]);
        draw_text(cv, x + pad * 2 + line, ty, series[i].label, scale, (rgb){30, 30, 30}, false);
        row++;
    }
}

static int plot_check(int n, const em_series *series, int width, int height) {
    if (width < 160 || height < 120 || width > 16384 || height > 16384) {
        em__error("plot_png: size must be 160x120 .. 16384x16384 pixels, got %dx%d", width, height);
        return -1;
    }
    if (n < 0 || (n > 0 && !series)) {
        em__error("plot_png: %d series given with series = %p", n, (const void *)series);
        return -1;
    }
    for (int i = 0; i < n; i++)
        if (series[i].n < 0 || (series[i].n > 0 && !series[i].y)) {
            em__error("plot_png: series %d (%s) has n = %d and y = %p", i, has_label(&series[i]) ? series[i].label : "unlabelled",
                      series[i].n, (const void *)series[i].y);
            return -1;
        }
    return 0;
}

int em_plot_png(const char *path, const char *title, const char *xlabel, const char *ylabel, int n, const em_series *series,
                int width, int height) {
    if (!path) {
        em__error("plot_png: path is NULL");
        return -1;
    }
    if (plot_check(n, series, width, height)) return -1;
    title = title ? title : "";
    xlabel = xlabel ? xlabel : "";
    ylabel = ylabel ? ylabel : "";

    /* data range over the finite points */
    double xmin = INFINITY, xmax = -INFINITY, ymin = INFINITY, ymax = -INFINITY;
    for (int s = 0; s < n; s++)
        for (int i = 0; i < series[s].n; i++) {
            double x = series_x(&series[s], i), y = series[s].y[i];
            if (!isfinite(x) || !isfinite(y)) continue;
            xmin = fmin(xmin, x), xmax = fmax(xmax, x), ymin = fmin(ymin, y), ymax = fmax(ymax, y);
        }
    if (!(xmin <= xmax)) xmin = 0, xmax = 1, ymin = 0, ymax = 1;

    bool indices = true; /* x is 0, 1, 2, ...: integer ticks only */
    for (int s = 0; s < n; s++) indices = indices && !series[s].x;

    /* Layout: pr is where the data goes, fr the frame a few pixels outside it
     * so lines at the extremes are not drawn over the frame. */
    int sc = imax(1, (imin(width, height) + 150) / 300); /* text scale */
    int ts = sc + 1;                                      /* title scale */
    int lh = GLYPH_H * sc, pad = 6 * sc, tick = 4 * sc, inset = 4 * sc;
    rect fr, pr;
    fr.y0 = pad * 2 + (title[0] ? GLYPH_H * ts + pad : 0);
    fr.y1 = height - 1 - (pad + lh + tick + pad + (xlabel[0] ? lh + pad : 0));
    pr.y0 = fr.y0 + inset, pr.y1 = fr.y1 - inset;
    axis ax, ay;
    axis_fit(&ay, ymin, ymax, pr.y1 - pr.y0, imax(3, imin(10, (pr.y1 - pr.y0) / (40 * sc))), sc, false, false);
    fr.x0 = pad + (ylabel[0] ? lh + pad : 0) + widest_label(&ay, sc) + tick + pad;
    fr.x1 = width - 1 - pad * 3;
    for (int pass = 0; pass < 2; pass++) { /* the last x label may need a wider right margin */
        pr.x0 = fr.x0 + inset, pr.x1 = fr.x1 - inset;
        axis_fit(&ax, xmin, xmax, pr.x1 - pr.x0, imax(3, imin(12, (pr.x1 - pr.x0) / (60 * sc))), sc, true, indices);
        char last[64];
        tick_label(&ax, ax.count - 1, last, sizeof last);
        fr.x1 = width - 1 - imax(pad * 3, text_width(last, sc) / 2 + pad - inset);
    }

    canvas cv = {width, height, malloc((size_t)width * (size_t)height * 3)};
    float *mask = calloc((size_t)width * (size_t)height, sizeof(float));
    float *ink = calloc((size_t)width * (size_t)height, sizeof(float));
    if (!cv.px || !mask || !ink) {
        free(cv.px), free(mask), free(ink);
        em__error("plot_png: out of memory for a %dx%d plot", width, height);
        return -1;
    }
    memset(cv.px, 255, (size_t)width * (size_t)height * 3);
    rgb grid = {232, 232, 232}, frame = {60, 60, 60}, text = {30, 30, 30};
    char b[64];

    /* grid lines, ticks and their labels */
    for (int i = 0; i < ay.count; i++) {
        int y = (int)lrint(pr.y1 - (double)i / (ay.count - 1) * (pr.y1 - pr.y0));
        fill(&cv, fr.x0, y, fr.x1 + 1, y + 1, grid);
        fill(&cv, fr.x0 - tick, y, fr.x0, y + 1, frame);
        tick_label(&ay, i, b, sizeof b);
        draw_text(&cv, fr.x0 - tick - pad / 2 - text_width(b, sc), y - (CAP_H * sc) / 2, b, sc, text, false);
    }
    for (int i = 0; i < ax.count; i++) {
        int x = (int)lrint(pr.x0 + (double)i / (ax.count - 1) * (pr.x1 - pr.x0));
        fill(&cv, x, fr.y0, x + 1, fr.y1 + 1, grid);
        fill(&cv, x, fr.y1 + 1, x + 1, fr.y1 + 1 + tick, frame);
        tick_label(&ax, i, b, sizeof b);
        draw_text(&cv, x - text_width(b, sc) / 2, fr.y1 + 1 + tick + pad / 2, b, sc, text, false);
    }

    /* the series, each composited whole so its own joints do not darken */
    double hw = 0.5 + 0.5 * sc;
    double kx = (pr.x1 - pr.x0) / (ax.hi - ax.lo), ky = (pr.y1 - pr.y0) / (ay.hi - ay.lo);
    for (int s = 0; s < n; s++) {
        const em_series *se = &series[s];
        memset(mask, 0, (size_t)width * (size_t)height * sizeof(float));
        double px = NAN, py = NAN;
        for (int i = 0; i < se->n; i++) {
            double x = series_x(se, i), y = se->y[i];
            if (!isfinite(x) || !isfinite(y)) { /* a gap in the line */
                px = py = NAN;
                continue;
            }
            double cx = pr.x0 + (x - ax.lo) * kx, cy = pr.y1 - (y - ay.lo) * ky;
            bool alone = isnan(px) && (i + 1 >= se->n || !isfinite(se->y[i + 1]) || !isfinite(series_x(se, i + 1)));
            if (!isnan(px) || alone) stroke(mask, width, fr, isnan(px) ? cx : px, isnan(py) ? cy : py, cx, cy, alone ? hw + 1 : hw);
            px = cx, py = cy;
        }
        composite(&cv, mask, fr, palette[s % 10], ink);
    }

    /* frame, legend, title and axis labels (long text is clipped at the edges) */
    fill(&cv, fr.x0 - 1, fr.y0 - 1, fr.x1 + 2, fr.y0, frame);
    fill(&cv, fr.x0 - 1, fr.y1 + 1, fr.x1 + 2, fr.y1 + 2, frame);
    fill(&cv, fr.x0 - 1, fr.y0 - 1, fr.x0, fr.y1 + 2, frame);
    fill(&cv, fr.x1 + 1, fr.y0 - 1, fr.x1 + 2, fr.y1 + 2, frame);
    draw_legend(&cv, fr, n, series, sc, ink);
    if (title[0]) draw_text(&cv, imax(pad, (width - text_width(title, ts)) / 2), pad * 2, title, ts, text, false);
    if (xlabel[0])
        draw_text(&cv, imax(pad, (fr.x0 + fr.x1 - text_width(xlabel, sc)) / 2), height - pad - lh, xlabel, sc, text, false);
    if (ylabel[0])
        draw_text(&cv, pad, imin(height - pad, (fr.y0 + fr.y1 + text_width(ylabel, sc)) / 2), ylabel, sc, text, true);

    int rc = save_png("plot_png", path, cv.px, height, width, 3);
    free(cv.px), free(mask), free(ink);
    return rc;
}

/* ---- image grids ---- */

int em_plot_image_grid(const char *path, em_tensor *tiles, int h, int w, int columns) {
    char sb[128];
    if (!path) {
        em__error("plot_image_grid: path is NULL");
        return -1;
    }
    if (!tiles) return em__null_input("plot_image_grid"), -1;
    int64_t n = tiles->ndim >= 1 ? tiles->shape[0] : 0;
    bool fits = h >= 1 && w >= 1 && n >= 1 &&
                ((tiles->ndim == 2 && tiles->shape[1] == (int64_t)h * w) ||
                 (tiles->ndim == 3 && tiles->shape[1] == h && tiles->shape[2] == w));
    if (!fits) {
        em__error("plot_image_grid: tiles must be [N,%d] or [N,%d,%d] with N >= 1, got %s", h * w, h, w,
                  em_shape_str(em__shape_of(tiles), sb, sizeof sb));
        return -1;
    }
    if (tiles->dtype == EM_BOOL) {
        em__error("plot_image_grid: tiles must be numeric, got bool");
        return -1;
    }
    const char *src = em_data(tiles);
    if (!src) return -1;
    int cols = columns > 0 ? columns : (int)ceil(sqrt((double)n));
    if (cols > n) cols = (int)n;
    int64_t rows = (n + cols - 1) / cols;
    int64_t gw = (int64_t)cols * (w + 1) + 1, gh = rows * (h + 1) + 1; /* 1-pixel gaps and border */
    if (gw > INT32_MAX / 4 || gh > INT32_MAX / 4 || gw * gh > ((int64_t)1 << 31)) {
        em__error("plot_image_grid: a grid of %lld x %lld pixels is too large", (long long)gw, (long long)gh);
        return -1;
    }
    uint8_t *px = malloc((size_t)(gw * gh));
    if (!px) {
        em__error("plot_image_grid: out of memory for %lld x %lld pixels", (long long)gw, (long long)gh);
        return -1;
    }
    memset(px, 255, (size_t)(gw * gh));
    em_dtype dt = (em_dtype)tiles->dtype;
    size_t es = em_dtype_size(dt), per = (size_t)h * (size_t)w;
    for (int64_t t = 0; t < n; t++) {
        const char *tile = src + (size_t)t * per * es;
        double lo = INFINITY, hi = -INFINITY;
        for (size_t i = 0; i < per; i++) {
            double v = em__read(tile + i * es, dt);
            if (isfinite(v)) lo = fmin(lo, v), hi = fmax(hi, v);
        }
        double k = hi > lo ? 255 / (hi - lo) : 0;
        int64_t ox = (t % cols) * (w + 1) + 1, oy = (t / cols) * (h + 1) + 1;
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                double v = em__read(tile + ((size_t)y * (size_t)w + (size_t)x) * es, dt);
                px[(oy + y) * gw + ox + x] = isfinite(v) ? (hi > lo ? (uint8_t)lrint((v - lo) * k) : 128) : 0;
            }
    }
    int rc = save_png("plot_image_grid", path, px, (int)gh, (int)gw, 1);
    free(px);
    return rc;
}
