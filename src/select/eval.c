/*
 * eval.c - stp_selector_match: the compiled tree against one message's
 * headers, in SQL's three-valued logic.
 *
 * Conditions evaluate to TRUE, FALSE or UNKNOWN; values to numbers (copied
 * out, so they outlive the next lookup) or strings. A header's string is
 * only good until the next lookup, so a string comparison of two headers
 * (the one place two are needed at once) copies the left one piecewise into
 * a stack buffer, looking both up again for each piece (compare_headers).
 * Nothing allocates; recursion follows the tree, at most 256 nodes deep.
 */
#include "select_internal.h"

#include <assert.h>
#include <math.h>
#include <string.h>
#include <strings.h>

#define PIECE 1024 /* bytes of a header copied at a time (compare_headers) */

enum tv { TV_FALSE, TV_TRUE, TV_UNKNOWN };

struct eval {
    const struct stp_selector *s;
    stp_selector_lookup lookup;
    void *ctx;
};

static enum tv eval_cond(const struct eval *e, uint16_t i);

static const char *header(const struct eval *e, const struct sel_node *nd, size_t *n)
{
    *n = 0;
    const char *v = e->lookup(e->ctx, e->s->chars + nd->v.s.off, nd->v.s.len, n);
    if (!v)
        *n = 0;
    return v;
}

/* --- numbers --- */

static double as_double(const struct sel_num *x)
{
    return x->is_int ? (double)x->i : x->d;
}

/* -1, 0 or 1, exact across int64 and double (both finite). */
static int num_cmp(const struct sel_num *x, const struct sel_num *y)
{
    if (x->is_int && y->is_int)
        return (x->i > y->i) - (x->i < y->i);
    if (!x->is_int && !y->is_int)
        return (x->d > y->d) - (x->d < y->d);
    if (!x->is_int)
        return -num_cmp(y, x);
    /* x an int64, y a double. */
    int64_t i = x->i;
    double d = y->d;
    if (d >= 9223372036854775808.0)
        return -1;
    if (d < -9223372036854775808.0)
        return 1;
    int64_t t = (int64_t)d; /* truncated; exact, and in range */
    if (i != t)
        return i < t ? -1 : 1;
    double frac = d - (double)t;
    return frac > 0 ? -1 : frac < 0 ? 1 : 0;
}

/* x op y; false when UNKNOWN (division by zero, a non-finite result).
 * Integers stay integers unless the result would overflow. */
static bool arith(char op, const struct sel_num *x, const struct sel_num *y, struct sel_num *out)
{
    if (x->is_int && y->is_int) {
        int64_t r = 0;
        bool ovf;
        if (op == '/' && y->i == 0)
            return false;
        if (op == '+')
            ovf = __builtin_add_overflow(x->i, y->i, &r);
        else if (op == '-')
            ovf = __builtin_sub_overflow(x->i, y->i, &r);
        else if (op == '*')
            ovf = __builtin_mul_overflow(x->i, y->i, &r);
        else if ((ovf = x->i == INT64_MIN && y->i == -1) == false)
            r = x->i / y->i;
        if (!ovf) {
            *out = (struct sel_num){.is_int = true, .i = r};
            return true;
        }
    }
    double a = as_double(x), b = as_double(y), r;
    if (op == '+')
        r = a + b;
    else if (op == '-')
        r = a - b;
    else if (op == '*')
        r = a * b;
    else if (b == 0)
        return false;
    else
        r = a / b;
    if (!isfinite(r))
        return false;
    *out = (struct sel_num){.is_int = false, .d = r};
    return true;
}

static struct sel_num literal_num(const struct sel_node *nd)
{
    if (nd->kind == K_INT)
        return (struct sel_num){.is_int = true, .i = nd->v.i};
    return (struct sel_num){.is_int = false, .d = nd->v.d};
}

/* The number node i stands for; false when UNKNOWN. */
static bool eval_num(const struct eval *e, uint16_t i, struct sel_num *out)
{
    const struct sel_node *nd = &e->s->nodes[i];
    size_t n;
    const char *v;
    struct sel_num x, y;
    switch (nd->kind) {
    case K_INT:
    case K_DBL:
        *out = literal_num(nd);
        return true;
    case K_IDENT:
        v = header(e, nd, &n);
        return v && sel_value_number(v, n, out);
    case K_NEG:
        if (!eval_num(e, nd->a, &x))
            return false;
        if (x.is_int && x.i != INT64_MIN)
            *out = (struct sel_num){.is_int = true, .i = -x.i};
        else
            *out = (struct sel_num){.is_int = false, .d = -as_double(&x)};
        return true;
    case K_ARITH:
        return eval_num(e, nd->a, &x) && eval_num(e, nd->b, &y) && arith((char)nd->op, &x, &y, out);
    default:
        assert(!"not a number node");
        return false;
    }
}

/* --- strings --- */

static int bytes_cmp(const char *a, size_t la, const char *b, size_t lb)
{
    size_t m = la < lb ? la : lb;
    int r = m ? memcmp(a, b, m) : 0;
    if (r)
        return r < 0 ? -1 : 1;
    return (la > lb) - (la < lb);
}

/* Two headers compared as bytes, a piece of the first at a time: each
 * piece looks both up again. False when either is absent (or the first
 * changes length between lookups, which the lookup's contract forbids). */
static bool compare_headers(const struct eval *e, const struct sel_node *na,
                            const struct sel_node *nb, int *c)
{
    char buf[PIECE];
    size_t off = 0, la0 = 0;
    for (;;) {
        size_t la, lb;
        const char *va = header(e, na, &la);
        if (!va || (off > 0 && la != la0))
            return false;
        la0 = la;
        size_t k = la - off > PIECE ? PIECE : la - off;
        if (k)
            memcpy(buf, va + off, k);
        const char *vb = header(e, nb, &lb);
        if (!vb)
            return false;
        size_t rb = lb > off ? lb - off : 0; /* what is left of b */
        int r = bytes_cmp(buf, k, rb ? vb + off : vb, rb < k ? rb : k);
        if (r != 0 || rb < k) { /* differ, or b ended inside the piece */
            *c = r != 0 ? r : 1;
            return true;
        }
        if (off + k == la) { /* a ends here */
            *c = rb == k ? 0 : -1;
            return true;
        }
        if (rb == k) { /* b ends here, a goes on */
            *c = 1;
            return true;
        }
        off += k;
    }
}

/* The string node (K_IDENT or K_STR) stands for; NULL for an absent header. */
static const char *string_of(const struct eval *e, const struct sel_node *nd, size_t *n)
{
    if (nd->kind == K_IDENT)
        return header(e, nd, n);
    *n = nd->v.s.len;
    return e->s->chars + nd->v.s.off;
}

/* a and b (K_IDENT or K_STR) compared as bytes into *c; false when UNKNOWN. */
static bool compare_strings(const struct eval *e, const struct sel_node *na,
                            const struct sel_node *nb, int *c)
{
    if (na->kind == K_IDENT && nb->kind == K_IDENT)
        return compare_headers(e, na, nb, c);
    size_t la, lb;
    const char *va = string_of(e, na, &la);
    if (!va)
        return false;
    const char *vb = string_of(e, nb, &lb); /* at most one of them looked up */
    if (!vb)
        return false;
    *c = bytes_cmp(va, la, vb, lb);
    return true;
}

/* --- conditions --- */

static enum tv truth(bool b)
{
    return b ? TV_TRUE : TV_FALSE;
}

static enum tv cmp_result(uint8_t op, int c)
{
    switch (op) {
    case C_EQ:
        return truth(c == 0);
    case C_NE:
        return truth(c != 0);
    case C_LT:
        return truth(c < 0);
    case C_GT:
        return truth(c > 0);
    case C_LE:
        return truth(c <= 0);
    default:
        return truth(c >= 0);
    }
}

static enum tv eval_cmp(const struct eval *e, const struct sel_node *nd)
{
    const struct sel_node *na = &e->s->nodes[nd->a], *nb = &e->s->nodes[nd->b];
    struct sel_num x, y;
    int c;
    if (nd->mode == M_NUM) {
        if (!eval_num(e, nd->a, &x) || !eval_num(e, nd->b, &y))
            return TV_UNKNOWN;
        return cmp_result(nd->op, num_cmp(&x, &y));
    }
    if (nd->mode == M_BOOL) {
        enum tv l = eval_cond(e, nd->a);
        enum tv r = l == TV_UNKNOWN ? TV_UNKNOWN : eval_cond(e, nd->b);
        if (r == TV_UNKNOWN)
            return TV_UNKNOWN;
        return truth((l == r) == (nd->op == C_EQ));
    }
    if (!compare_strings(e, na, nb, &c))
        return TV_UNKNOWN;
    return cmp_result(nd->op, c);
}

/* a IN (items): their OR of a = item. */
static enum tv eval_in(const struct eval *e, const struct sel_node *nd)
{
    const struct sel_node *items = &e->s->nodes[nd->b];
    struct sel_num x;
    if (e->s->nodes[nd->a].type == T_NUM) {
        if (!eval_num(e, nd->a, &x))
            return TV_UNKNOWN;
        for (uint16_t k = 0; k < nd->n; k++) {
            struct sel_num y = literal_num(&items[k]);
            if (num_cmp(&x, &y) == 0)
                return TV_TRUE;
        }
        return TV_FALSE;
    }
    size_t n;
    const char *v = string_of(e, &e->s->nodes[nd->a], &n);
    if (!v)
        return TV_UNKNOWN;
    enum tv r = TV_FALSE;
    int as_num = -1; /* -1 not tried yet, 0 not a number, 1 in x */
    for (uint16_t k = 0; k < nd->n; k++) {
        const struct sel_node *it = &items[k];
        if (it->kind == K_STR) {
            if (bytes_cmp(v, n, e->s->chars + it->v.s.off, it->v.s.len) == 0)
                return TV_TRUE;
            continue;
        }
        if (as_num < 0)
            as_num = sel_value_number(v, n, &x);
        struct sel_num y = literal_num(it);
        if (!as_num)
            r = TV_UNKNOWN;
        else if (num_cmp(&x, &y) == 0)
            return TV_TRUE;
    }
    return r;
}

static enum tv eval_like(const struct eval *e, const struct sel_node *nd)
{
    size_t n;
    const char *v = string_of(e, &e->s->nodes[nd->a], &n);
    if (!v)
        return TV_UNKNOWN;
    return truth(sel_like_match(e->s->els + nd->v.s.off, nd->v.s.len, v, n));
}

/* A header used as a condition: 'true' or 'false' in any case. */
static enum tv header_truth(const struct eval *e, const struct sel_node *nd)
{
    size_t n;
    const char *v = header(e, nd, &n);
    if (v && n == 4 && strncasecmp(v, "true", 4) == 0)
        return TV_TRUE;
    if (v && n == 5 && strncasecmp(v, "false", 5) == 0)
        return TV_FALSE;
    return TV_UNKNOWN;
}

static enum tv eval_logic(const struct eval *e, const struct sel_node *nd)
{
    /* AND: FALSE decides; OR: TRUE decides. Otherwise UNKNOWN wins. */
    enum tv decides = nd->kind == K_AND ? TV_FALSE : TV_TRUE;
    enum tv l = eval_cond(e, nd->a);
    if (l == decides)
        return l;
    enum tv r = eval_cond(e, nd->b);
    if (r == decides)
        return r;
    return l == TV_UNKNOWN || r == TV_UNKNOWN ? TV_UNKNOWN : l;
}

static enum tv eval_cond(const struct eval *e, uint16_t i)
{
    const struct sel_node *nd = &e->s->nodes[i];
    size_t n;
    enum tv t;
    switch (nd->kind) {
    case K_BOOL:
        return truth(nd->v.i != 0);
    case K_IDENT:
        return header_truth(e, nd);
    case K_NOT:
        t = eval_cond(e, nd->a);
        return t == TV_UNKNOWN ? t : truth(t == TV_FALSE);
    case K_AND:
    case K_OR:
        return eval_logic(e, nd);
    case K_CMP:
        return eval_cmp(e, nd);
    case K_IN:
        return eval_in(e, nd);
    case K_LIKE:
        return eval_like(e, nd);
    case K_NULL:
        return truth(header(e, &e->s->nodes[nd->a], &n) == NULL);
    default:
        assert(!"not a condition node");
        return TV_UNKNOWN;
    }
}

bool stp_selector_match(const struct stp_selector *s, stp_selector_lookup lookup, void *ctx)
{
    assert(s && s->nnodes > 0 && lookup);
    struct eval e = {.s = s, .lookup = lookup, .ctx = ctx};
    return eval_cond(&e, (uint16_t)(s->nnodes - 1)) == TV_TRUE;
}
