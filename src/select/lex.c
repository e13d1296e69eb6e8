/*
 * lex.c - the selector's tokens, and the number syntax shared by numeric
 * literals and header values.
 *
 * sel_lex reads one token from a NUL-terminated copy of the selector text
 * (the NUL lets strtod read decimals in place). Every error names the byte
 * where it is: the start of the bad token, or the character that is not
 * allowed. The bounds on identifiers and string literals are checked here.
 */
#include "select_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_VALUE_NUMBER 128 /* bytes of a header value read as a number */

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_ident_start(char c)
{
    return is_alpha(c) || c == '_' || c == '$';
}

static bool is_ident_char(char c)
{
    return is_ident_start(c) || is_digit(c) || c == '.' || c == '-';
}

static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

size_t sel_scan_number(const char *s, size_t n, bool *is_int)
{
    size_t i = 0;
    while (i < n && is_digit(s[i]))
        i++;
    size_t int_digits = i;
    *is_int = true;
    if (i < n && s[i] == '.') {
        size_t j = i + 1;
        while (j < n && is_digit(s[j]))
            j++;
        if (int_digits == 0 && j == i + 1)
            return 0; /* a lone '.' */
        i = j;
        *is_int = false;
    } else if (int_digits == 0) {
        return 0;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        size_t j = i + 1;
        if (j < n && (s[j] == '+' || s[j] == '-'))
            j++;
        size_t k = j;
        while (k < n && is_digit(s[k]))
            k++;
        if (k > j) { /* only a complete exponent belongs to the number */
            i = k;
            *is_int = false;
        }
    }
    return i;
}

/* Digits s[0, n) as a magnitude; false when it is over 2^63. */
static bool digits_value(const char *s, size_t n, uint64_t *out)
{
    const uint64_t limit = (uint64_t)1 << 63;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (limit - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

bool sel_value_number(const char *s, size_t n, struct sel_num *out)
{
    if (n == 0 || n > MAX_VALUE_NUMBER)
        return false;
    size_t i = (s[0] == '+' || s[0] == '-') ? 1 : 0;
    bool neg = s[0] == '-', is_int;
    size_t m = sel_scan_number(s + i, n - i, &is_int);
    if (m == 0 || i + m != n)
        return false;
    uint64_t mag;
    if (is_int && digits_value(s + i, m, &mag) && (mag < ((uint64_t)1 << 63) || neg)) {
        out->is_int = true;
        out->i = neg ? (int64_t)(0 - mag) : (int64_t)mag; /* 0 - 2^63 wraps to INT64_MIN */
        return true;
    }
    char buf[MAX_VALUE_NUMBER + 1];
    memcpy(buf, s, n);
    buf[n] = '\0';
    char *end;
    double d = strtod(buf, &end);
    if (end != buf + n || !isfinite(d))
        return false;
    out->is_int = false;
    out->d = d;
    return true;
}

size_t sel_utf8_len(const char *s, size_t n)
{
    unsigned char c = (unsigned char)s[0];
    size_t need = c >= 0xc2 && c <= 0xdf   ? 2
                  : c >= 0xe0 && c <= 0xef ? 3
                  : c >= 0xf0 && c <= 0xf4 ? 4
                                           : 1;
    if (need > n)
        return 1;
    for (size_t k = 1; k < need; k++)
        if (((unsigned char)s[k] & 0xc0) != 0x80)
            return 1;
    return need;
}

static const struct {
    const char *word;
    uint8_t kind;
} keywords[] = {
    {"AND", TK_AND},   {"OR", TK_OR},         {"NOT", TK_NOT},         {"IN", TK_IN},
    {"LIKE", TK_LIKE}, {"ESCAPE", TK_ESCAPE}, {"BETWEEN", TK_BETWEEN}, {"IS", TK_IS},
    {"NULL", TK_NULL}, {"TRUE", TK_TRUE},     {"FALSE", TK_FALSE},
};

static uint8_t word_kind(const char *s, size_t n)
{
    for (size_t k = 0; k < sizeof(keywords) / sizeof(keywords[0]); k++)
        if (strlen(keywords[k].word) == n && strncasecmp(keywords[k].word, s, n) == 0)
            return keywords[k].kind;
    return TK_IDENT;
}

static int lex_ident(const char *text, size_t len, struct sel_token *t, char *why, size_t whylen)
{
    size_t i = t->pos;
    while (i < len && is_ident_char(text[i]))
        i++;
    t->len = (uint32_t)(i - t->pos);
    if (t->len > STP_SELECTOR_MAX_IDENT) {
        snprintf(why, whylen, "the identifier is longer than %d bytes", STP_SELECTOR_MAX_IDENT);
        return -1;
    }
    t->kind = word_kind(text + t->pos, t->len);
    return 0;
}

static int lex_number(const char *text, size_t len, struct sel_token *t, char *why, size_t whylen)
{
    bool is_int;
    size_t n = sel_scan_number(text + t->pos, len - t->pos, &is_int);
    t->len = (uint32_t)n;
    char next = text[t->pos + n]; /* the NUL at len stops this */
    if (is_ident_char(next) && next != '-') {
        snprintf(why, whylen, "malformed number");
        return -1;
    }
    if (is_int) {
        t->kind = TK_INT;
        if (!digits_value(text + t->pos, n, &t->u)) {
            snprintf(why, whylen, "the integer does not fit in 64 bits");
            return -1;
        }
        return 0;
    }
    t->kind = TK_DBL;
    char *end;
    t->d = strtod(text + t->pos, &end);
    if (end != text + t->pos + n || !isfinite(t->d)) {
        snprintf(why, whylen, "the number is not finite");
        return -1;
    }
    return 0;
}

static int lex_string(const char *text, size_t len, struct sel_token *t, char *why, size_t whylen)
{
    size_t i = t->pos + 1, dlen = 0;
    for (;;) {
        if (i >= len) {
            snprintf(why, whylen, "unterminated string literal");
            return -1;
        }
        if (text[i] == '\'') {
            if (i + 1 < len && text[i + 1] == '\'') {
                i += 2;
                dlen++;
                continue;
            }
            break;
        }
        i++;
        dlen++;
    }
    if (dlen > STP_SELECTOR_MAX_STRING) {
        snprintf(why, whylen, "the string is longer than %d bytes", STP_SELECTOR_MAX_STRING);
        return -1;
    }
    t->kind = TK_STR;
    t->len = (uint32_t)(i + 1 - t->pos);
    t->dlen = (uint32_t)dlen;
    return 0;
}

void sel_decode_string(const char *text, const struct sel_token *t, char *out)
{
    size_t end = t->pos + t->len - 1;
    for (size_t i = t->pos + 1; i < end; i++) {
        *out++ = text[i];
        if (text[i] == '\'')
            i++; /* the second quote of a pair */
    }
}

/* One- and two-byte operators; false when c is none. */
static bool lex_operator(const char *text, size_t len, struct sel_token *t)
{
    static const char ones[] = "(),=+-*/<>";
    static const uint8_t kinds[] = {TK_LP,    TK_RP,   TK_COMMA, TK_EQ, TK_PLUS,
                                    TK_MINUS, TK_STAR, TK_SLASH, TK_LT, TK_GT};
    char c = text[t->pos];
    const char *p = c ? strchr(ones, c) : NULL;
    if (!p)
        return false;
    t->kind = kinds[p - ones];
    t->len = 1;
    char next = t->pos + 1 < len ? text[t->pos + 1] : '\0';
    if (c == '<' && next == '>')
        t->kind = TK_NE;
    else if (c == '<' && next == '=')
        t->kind = TK_LE;
    else if (c == '>' && next == '=')
        t->kind = TK_GE;
    if (t->kind == TK_NE || t->kind == TK_LE || t->kind == TK_GE)
        t->len = 2;
    return true;
}

int sel_lex(const char *text, size_t len, size_t at, struct sel_token *t, char *why, size_t whylen)
{
    while (at < len && is_blank(text[at]))
        at++;
    *t = (struct sel_token){.kind = TK_END, .pos = (uint32_t)at};
    if (at == len)
        return 0;
    char c = text[at];
    if (is_ident_start(c))
        return lex_ident(text, len, t, why, whylen);
    if (is_digit(c) || (c == '.' && at + 1 < len && is_digit(text[at + 1])))
        return lex_number(text, len, t, why, whylen);
    if (c == '\'')
        return lex_string(text, len, t, why, whylen);
    if (lex_operator(text, len, t))
        return 0;
    if (c > 0x20 && c < 0x7f)
        snprintf(why, whylen, "unexpected character '%c'", c);
    else
        snprintf(why, whylen, "unexpected byte 0x%02x", (unsigned char)c);
    return -1;
}
