/* Python-style JSON and repr (see mgmt_pyjson.h). */
#include "tools/vhostmgmt/mgmt_pyjson.h"

#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sbuf {
    char *p;
    size_t len, cap;
    bool oom;
};

static void put(struct sbuf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void puts_(struct sbuf *b, const char *s)
{
    put(b, s, strlen(s));
}

static void putf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void putf(struct sbuf *b, const char *fmt, ...)
{
    char t[64];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(t, sizeof(t), fmt, ap);
    va_end(ap);
    put(b, t, n > 0 ? (size_t)n : 0);
}

static char *finish(struct sbuf *b)
{
    if (!b->oom && !b->p)
        put(b, "", 0);
    if (b->oom) {
        free(b->p);
        return NULL;
    }
    return b->p;
}

/* The next code point of UTF-8 text (jansson only holds valid UTF-8). */
static uint32_t next_cp(const unsigned char **s)
{
    const unsigned char *p = *s;
    uint32_t c = *p;
    int more = c < 0x80 ? 0 : c < 0xe0 ? 1 : c < 0xf0 ? 2 : 3;
    if (more)
        c &= 0x3fu >> more;
    for (int i = 1; i <= more && p[i]; i++)
        c = (c << 6) | (p[i] & 0x3f);
    *s = p + 1 + more;
    return c;
}

static void json_str(struct sbuf *b, const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + len;
    puts_(b, "\"");
    while (p < end) {
        uint32_t c = next_cp(&p);
        switch (c) {
        case '"': puts_(b, "\\\""); break;
        case '\\': puts_(b, "\\\\"); break;
        case '\n': puts_(b, "\\n"); break;
        case '\r': puts_(b, "\\r"); break;
        case '\t': puts_(b, "\\t"); break;
        case '\b': puts_(b, "\\b"); break;
        case '\f': puts_(b, "\\f"); break;
        default:
            if (c >= 0x20 && c < 0x7f) {
                char ch = (char)c;
                put(b, &ch, 1);
            } else if (c < 0x10000) {
                putf(b, "\\u%04x", c);
            } else {
                c -= 0x10000;
                putf(b, "\\u%04x\\u%04x", 0xd800 + (c >> 10), 0xdc00 + (c & 0x3ff));
            }
        }
    }
    puts_(b, "\"");
}

/* repr(float): the shortest digits that read back the same, fixed notation
 * for exponents -4..15, else d.ddde+XX. */
static void py_float(struct sbuf *b, double d)
{
    if (isnan(d) || isinf(d)) {
        puts_(b, isnan(d) ? "NaN" : d > 0 ? "Infinity" : "-Infinity");
        return;
    }
    char e[40];
    for (int prec = 0; prec <= 17; prec++) {
        snprintf(e, sizeof(e), "%.*e", prec, d);
        if (strtod(e, NULL) == d)
            break;
    }
    char *ep = strchr(e, 'e');
    int exp = atoi(ep + 1);
    *ep = '\0';
    bool neg = e[0] == '-';
    char digits[24];
    size_t nd = 0;
    for (const char *q = e + neg; *q; q++)
        if (*q != '.')
            digits[nd++] = *q;
    while (nd > 1 && digits[nd - 1] == '0')
        nd--;
    digits[nd] = '\0';
    if (neg)
        puts_(b, "-");
    if (exp >= -4 && exp < 16) {
        if (exp < 0) {
            puts_(b, "0.");
            for (int i = -1; i > exp; i--)
                puts_(b, "0");
            puts_(b, digits);
        } else {
            for (int i = 0; i <= exp; i++)
                put(b, i < (int)nd ? &digits[i] : "0", 1);
            puts_(b, ".");
            puts_(b, (int)nd > exp + 1 ? digits + exp + 1 : "0");
        }
        return;
    }
    put(b, digits, 1);
    if (nd > 1) {
        puts_(b, ".");
        puts_(b, digits + 1);
    }
    putf(b, "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
}

static void newline(struct sbuf *b, int indent, int depth)
{
    if (indent < 0)
        return;
    puts_(b, "\n");
    for (int i = 0; i < indent * depth; i++)
        puts_(b, " ");
}

static void dump(struct sbuf *b, const json_t *v, int indent, int depth)
{
    const char *sep = indent < 0 ? ", " : ",";
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        if (!json_object_size(v)) {
            puts_(b, "{}");
            return;
        }
        puts_(b, "{");
        const char *k;
        json_t *x;
        size_t i = 0;
        json_object_foreach((json_t *)v, k, x) {
            if (i++)
                puts_(b, sep);
            newline(b, indent, depth + 1);
            json_str(b, k, strlen(k));
            puts_(b, ": ");
            dump(b, x, indent, depth + 1);
        }
        newline(b, indent, depth);
        puts_(b, "}");
        return;
    }
    case JSON_ARRAY: {
        if (!json_array_size(v)) {
            puts_(b, "[]");
            return;
        }
        puts_(b, "[");
        for (size_t i = 0; i < json_array_size(v); i++) {
            if (i)
                puts_(b, sep);
            newline(b, indent, depth + 1);
            dump(b, json_array_get(v, i), indent, depth + 1);
        }
        newline(b, indent, depth);
        puts_(b, "]");
        return;
    }
    case JSON_STRING: json_str(b, json_string_value(v), json_string_length(v)); return;
    case JSON_INTEGER: putf(b, "%" JSON_INTEGER_FORMAT, json_integer_value(v)); return;
    case JSON_REAL: py_float(b, json_real_value(v)); return;
    case JSON_TRUE: puts_(b, "true"); return;
    case JSON_FALSE: puts_(b, "false"); return;
    case JSON_NULL: puts_(b, "null"); return;
    }
}

char *mgmt_py_dumps(const json_t *v)
{
    struct sbuf b = {0};
    dump(&b, v, -1, 0);
    return finish(&b);
}

char *mgmt_py_dumps_indent(const json_t *v)
{
    struct sbuf b = {0};
    dump(&b, v, 2, 0);
    return finish(&b);
}

/* repr(str): single quotes unless the text has one and no double quote. */
static void repr_str(struct sbuf *b, const char *s, size_t len)
{
    char q = memchr(s, '\'', len) && !memchr(s, '"', len) ? '"' : '\'';
    const unsigned char *p = (const unsigned char *)s, *end = p + len;
    put(b, &q, 1);
    while (p < end) {
        const unsigned char *start = p;
        uint32_t c = next_cp(&p);
        if (c == '\\' || c == (uint32_t)q) {
            puts_(b, "\\");
            put(b, (const char *)start, 1);
        } else if (c == '\n') {
            puts_(b, "\\n");
        } else if (c == '\r') {
            puts_(b, "\\r");
        } else if (c == '\t') {
            puts_(b, "\\t");
        } else if (c < 0x20 || (c >= 0x7f && c < 0xa0)) {
            putf(b, "\\x%02x", c);
        } else {
            put(b, (const char *)start, (size_t)(p - start));
        }
    }
    put(b, &q, 1);
}

static void repr(struct sbuf *b, const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        puts_(b, "{");
        const char *k;
        json_t *x;
        size_t i = 0;
        json_object_foreach((json_t *)v, k, x) {
            if (i++)
                puts_(b, ", ");
            repr_str(b, k, strlen(k));
            puts_(b, ": ");
            repr(b, x);
        }
        puts_(b, "}");
        return;
    }
    case JSON_ARRAY:
        puts_(b, "[");
        for (size_t i = 0; i < json_array_size(v); i++) {
            if (i)
                puts_(b, ", ");
            repr(b, json_array_get(v, i));
        }
        puts_(b, "]");
        return;
    case JSON_STRING: repr_str(b, json_string_value(v), json_string_length(v)); return;
    case JSON_TRUE: puts_(b, "True"); return;
    case JSON_FALSE: puts_(b, "False"); return;
    case JSON_NULL: puts_(b, "None"); return;
    default: dump(b, v, -1, 0); return;   /* numbers read the same */
    }
}

char *mgmt_py_repr(const json_t *v)
{
    struct sbuf b = {0};
    repr(&b, v);
    return finish(&b);
}
