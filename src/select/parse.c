/*
 * parse.c - stp_selector_compile: a recursive-descent parser from selector
 * text to the node tree eval.c walks, with the types checked on the way.
 *
 * Grammar (loosest first; the predicates do not chain):
 *   or    := and { OR and }
 *   and   := not { AND not }
 *   not   := NOT not | pred
 *   pred  := sum [ cmp sum | [NOT] BETWEEN sum AND sum | [NOT] IN ( lit {, lit} )
 *                | [NOT] LIKE string [ESCAPE string] | IS [NOT] NULL ]
 *   sum   := prod { (+|-) prod }
 *   prod  := unary { (*|/) unary }
 *   unary := (-|+) unary | primary
 *   primary := ident | string | number | TRUE | FALSE | ( or )
 *
 * The parser works in a scratch struct sized for the bounds (nodes, LIKE
 * elements and decoded bytes can never outgrow the text), then copies what
 * it built into one allocation. The first error wins: every parse function
 * returns a node index or -1 after fail() wrote the message.
 */
#include "select_internal.h"

#include "stampede/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct parser {
    char text[STP_SELECTOR_MAX_TEXT + 1]; /* NUL-terminated copy */
    size_t len;
    struct sel_token tok;  /* the lookahead */
    struct sel_token prev; /* the token consumed last */
    int depth;
    bool last_bare; /* the last predicate parsed was a value with no operator */
    char *err;
    size_t errlen;
    bool failed;
    size_t nnodes, nels, nchars;
    struct sel_node nodes[STP_SELECTOR_MAX_NODES];
    struct sel_like_el els[STP_SELECTOR_MAX_TEXT];
    char chars[STP_SELECTOR_MAX_TEXT];
};

static int parse_or(struct parser *p);
static int parse_sum(struct parser *p);

/* The 1-based character position of byte pos. */
static size_t char_pos(const char *text, size_t len, size_t pos)
{
    size_t i = 0, n = 1;
    while (i < pos && i < len) {
        i += sel_utf8_len(text + i, len - i);
        n++;
    }
    return n;
}

/* Write "at N: what" (the first error only); -1 for the caller to return. */
__attribute__((format(printf, 3, 4))) static int fail(struct parser *p, size_t pos, const char *fmt,
                                                      ...)
{
    if (p->failed)
        return -1;
    p->failed = true;
    if (!p->err || p->errlen == 0)
        return -1;
    int n = snprintf(p->err, p->errlen, "at %zu: ", char_pos(p->text, p->len, pos));
    if (n >= 0 && (size_t)n < p->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(p->err + n, p->errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static int advance(struct parser *p)
{
    char why[96];
    p->prev = p->tok;
    if (sel_lex(p->text, p->len, p->tok.pos + p->tok.len, &p->tok, why, sizeof(why)) != 0)
        return fail(p, p->tok.pos, "%s", why);
    return 0;
}

static int expect_value_fail(struct parser *p)
{
    if (p->prev.len == 0)
        return fail(p, p->tok.pos, "expected a value");
    int shown = p->prev.len > 20 ? 20 : (int)p->prev.len;
    return fail(p, p->tok.pos, "expected a value after '%.*s'", shown, p->text + p->prev.pos);
}

static int enter(struct parser *p, size_t pos)
{
    if (++p->depth > STP_SELECTOR_MAX_DEPTH)
        return fail(p, pos, "nested more than %d deep", STP_SELECTOR_MAX_DEPTH);
    return 0;
}

static int add_node(struct parser *p, struct sel_node nd)
{
    if (p->nnodes == STP_SELECTOR_MAX_NODES)
        return fail(p, p->prev.pos, "more than %d nodes", STP_SELECTOR_MAX_NODES);
    p->nodes[p->nnodes] = nd;
    return (int)p->nnodes++;
}

static int add_binary(struct parser *p, uint8_t kind, uint8_t type, int a, int b)
{
    return add_node(p, (struct sel_node){.kind = kind,
                                         .type = type,
                                         .a = (uint16_t)a,
                                         .b = (uint16_t)b,
                                         .pos = p->nodes[a].pos});
}

static const char *type_name(uint8_t type)
{
    return type == T_BOOL ? "boolean" : type == T_NUM ? "number" : "string";
}

/* A node usable where AND, OR, NOT or the whole selector want a condition. */
static int check_cond(struct parser *p, int i)
{
    uint8_t t = p->nodes[i].type;
    if (t == T_BOOL || t == T_ANY)
        return 0;
    return fail(p, p->nodes[i].pos, "expected a condition, found a %s", type_name(t));
}

/* A node usable in arithmetic. */
static int check_num(struct parser *p, int i)
{
    uint8_t t = p->nodes[i].type;
    if (t == T_NUM || t == T_ANY)
        return 0;
    return fail(p, p->nodes[i].pos, "expected a number, found a %s", type_name(t));
}

/* Add `a op b`, deciding how it compares; errors name pos (the operator). */
static int add_cmp(struct parser *p, uint8_t op, int a, int b, size_t pos)
{
    uint8_t ta = p->nodes[a].type, tb = p->nodes[b].type;
    uint8_t t = ta == T_ANY ? tb : ta;
    if (ta != T_ANY && tb != T_ANY && ta != tb)
        return fail(p, pos, "cannot compare a %s with a %s", type_name(ta), type_name(tb));
    if (t == T_BOOL && op != C_EQ && op != C_NE)
        return fail(p, pos, "booleans can only be compared with = or <>");
    uint8_t mode = t == T_NUM ? M_NUM : t == T_BOOL ? M_BOOL : M_STR;
    int i = add_binary(p, K_CMP, T_BOOL, a, b);
    if (i >= 0) {
        p->nodes[i].op = op;
        p->nodes[i].mode = mode;
    }
    return i;
}

/* Copy bytes into the selector's chars; the node's v.s. */
static void add_chars(struct parser *p, struct sel_node *nd, const char *s, size_t n)
{
    memcpy(p->chars + p->nchars, s, n);
    nd->v.s.off = (uint32_t)p->nchars;
    nd->v.s.len = (uint32_t)n;
    p->nchars += n;
}

static int int_literal(struct parser *p, uint64_t mag, bool neg, size_t pos)
{
    if (mag > (uint64_t)INT64_MAX + (neg ? 1 : 0))
        return fail(p, pos, "the integer does not fit in 64 bits");
    struct sel_node nd = {.kind = K_INT, .type = T_NUM, .pos = (uint32_t)pos};
    nd.v.i = neg ? (int64_t)(0 - mag) : (int64_t)mag; /* 0 - 2^63 wraps to INT64_MIN */
    return add_node(p, nd);
}

static int string_literal(struct parser *p)
{
    struct sel_node nd = {.kind = K_STR, .type = T_STR, .pos = p->tok.pos};
    nd.v.s.off = (uint32_t)p->nchars;
    nd.v.s.len = p->tok.dlen;
    sel_decode_string(p->text, &p->tok, p->chars + p->nchars);
    p->nchars += p->tok.dlen;
    return add_node(p, nd);
}

/* A parenthesized expression: the '(' is the lookahead. */
static int parse_paren(struct parser *p)
{
    if (enter(p, p->tok.pos) != 0 || advance(p) != 0)
        return -1;
    int a = parse_or(p);
    if (a < 0)
        return -1;
    if (p->tok.kind != TK_RP)
        return fail(p, p->tok.pos, "expected %s or ')'", p->last_bare ? "an operator" : "AND, OR");
    p->depth--;
    return advance(p) != 0 ? -1 : a;
}

static int parse_primary(struct parser *p)
{
    struct sel_node nd = {.pos = p->tok.pos};
    int i;
    switch (p->tok.kind) {
    case TK_IDENT:
        nd.kind = K_IDENT;
        nd.type = T_ANY;
        add_chars(p, &nd, p->text + p->tok.pos, p->tok.len);
        i = add_node(p, nd);
        break;
    case TK_STR:
        i = string_literal(p);
        break;
    case TK_INT:
        i = int_literal(p, p->tok.u, false, p->tok.pos);
        break;
    case TK_DBL:
        nd.kind = K_DBL;
        nd.type = T_NUM;
        nd.v.d = p->tok.d;
        i = add_node(p, nd);
        break;
    case TK_TRUE:
    case TK_FALSE:
        nd.kind = K_BOOL;
        nd.type = T_BOOL;
        nd.v.i = p->tok.kind == TK_TRUE;
        i = add_node(p, nd);
        break;
    case TK_LP:
        return parse_paren(p);
    case TK_NULL:
        return fail(p, p->tok.pos, "NULL is only allowed in IS [NOT] NULL");
    default:
        return expect_value_fail(p);
    }
    return i < 0 || advance(p) != 0 ? -1 : i;
}

/* A signed number literal folds into one node (so -9223372036854775808
 * fits); any other operand gets a K_NEG (or nothing, for '+'). */
static int parse_unary(struct parser *p)
{
    if (p->tok.kind != TK_MINUS && p->tok.kind != TK_PLUS)
        return parse_primary(p);
    bool neg = p->tok.kind == TK_MINUS;
    size_t pos = p->tok.pos;
    if (enter(p, pos) != 0 || advance(p) != 0)
        return -1;
    int a;
    if (p->tok.kind == TK_INT) {
        a = int_literal(p, p->tok.u, neg, pos);
        if (a < 0 || advance(p) != 0)
            return -1;
    } else {
        a = parse_unary(p);
        if (a < 0 || check_num(p, a) != 0)
            return -1;
        if (neg && p->nodes[a].kind == K_DBL) {
            p->nodes[a].v.d = -p->nodes[a].v.d;
            p->nodes[a].pos = (uint32_t)pos;
        } else if (neg) {
            a = add_node(p,
                         (struct sel_node){
                             .kind = K_NEG, .type = T_NUM, .a = (uint16_t)a, .pos = (uint32_t)pos});
        }
    }
    p->depth--;
    return a;
}

/* prod and sum: left-associative arithmetic. */
static int parse_arith(struct parser *p, bool sum)
{
    int a = sum ? parse_arith(p, false) : parse_unary(p);
    for (;;) {
        uint8_t k = p->tok.kind;
        bool ours = sum ? (k == TK_PLUS || k == TK_MINUS) : (k == TK_STAR || k == TK_SLASH);
        if (a < 0 || !ours)
            return a;
        char op = p->text[p->tok.pos];
        if (advance(p) != 0)
            return -1;
        int b = sum ? parse_arith(p, false) : parse_unary(p);
        if (b < 0 || check_num(p, a) != 0 || check_num(p, b) != 0)
            return -1;
        a = add_binary(p, K_ARITH, T_NUM, a, b);
        if (a >= 0)
            p->nodes[a].op = (uint8_t)op;
    }
}

static int parse_sum(struct parser *p)
{
    return parse_arith(p, true);
}

static int add_not(struct parser *p, int a)
{
    if (a < 0)
        return -1;
    return add_node(
        p,
        (struct sel_node){.kind = K_NOT, .type = T_BOOL, .a = (uint16_t)a, .pos = p->nodes[a].pos});
}

/* a [NOT] BETWEEN lo AND hi: built as lo <= a AND a <= hi (a shared). */
static int parse_between(struct parser *p, int a, bool neg)
{
    size_t pos = p->tok.pos;
    if (advance(p) != 0)
        return -1;
    int lo = parse_sum(p);
    if (lo < 0)
        return -1;
    if (p->tok.kind != TK_AND)
        return fail(p, p->tok.pos, "expected AND in BETWEEN");
    if (advance(p) != 0)
        return -1;
    int hi = parse_sum(p);
    if (hi < 0)
        return -1;
    int c1 = add_cmp(p, C_LE, lo, a, pos);
    int c2 = c1 < 0 ? -1 : add_cmp(p, C_LE, a, hi, pos);
    int r = c2 < 0 ? -1 : add_binary(p, K_AND, T_BOOL, c1, c2);
    if (r >= 0)
        p->nodes[r].pos = p->nodes[a].pos;
    return neg ? add_not(p, r) : r;
}

/* One IN list item: a string, or a number with an optional sign. */
static int parse_in_item(struct parser *p, uint8_t want)
{
    size_t pos = p->tok.pos;
    bool neg = false;
    if (p->tok.kind == TK_MINUS || p->tok.kind == TK_PLUS) {
        neg = p->tok.kind == TK_MINUS;
        if (advance(p) != 0)
            return -1;
        if (p->tok.kind != TK_INT && p->tok.kind != TK_DBL)
            return fail(p, p->tok.pos, "expected a number after the sign");
    }
    int i;
    if (p->tok.kind == TK_STR) { /* (never after a sign: see above) */
        i = string_literal(p);
    } else if (p->tok.kind == TK_INT) {
        i = int_literal(p, p->tok.u, neg, pos);
    } else if (p->tok.kind == TK_DBL) {
        i = add_node(p, (struct sel_node){.kind = K_DBL,
                                          .type = T_NUM,
                                          .pos = (uint32_t)pos,
                                          .v.d = neg ? -p->tok.d : p->tok.d});
    } else {
        return fail(p, p->tok.pos, "expected a string or a number in the IN list");
    }
    if (i >= 0 && want != T_ANY && p->nodes[i].type != want)
        return fail(p, pos, "cannot compare a %s with a %s", type_name(want),
                    type_name(p->nodes[i].type));
    return i < 0 || advance(p) != 0 ? -1 : i;
}

static int parse_in(struct parser *p, int a, bool neg)
{
    size_t pos = p->tok.pos;
    uint8_t want = p->nodes[a].type;
    if (want == T_BOOL)
        return fail(p, pos, "IN needs a header, a string or a number before it");
    if (advance(p) != 0)
        return -1;
    if (p->tok.kind != TK_LP)
        return fail(p, p->tok.pos, "expected '(' after IN");
    size_t first = p->nnodes, n = 0;
    do {
        if (advance(p) != 0)
            return -1;
        if (++n > STP_SELECTOR_MAX_IN)
            return fail(p, p->tok.pos, "more than %d items in the IN list", STP_SELECTOR_MAX_IN);
        if (parse_in_item(p, want) < 0)
            return -1;
    } while (p->tok.kind == TK_COMMA);
    if (p->tok.kind != TK_RP)
        return fail(p, p->tok.pos, "expected ',' or ')' in the IN list");
    if (advance(p) != 0)
        return -1;
    int r = add_node(p, (struct sel_node){.kind = K_IN,
                                          .type = T_BOOL,
                                          .a = (uint16_t)a,
                                          .b = (uint16_t)first,
                                          .n = (uint16_t)n,
                                          .pos = p->nodes[a].pos});
    return neg ? add_not(p, r) : r;
}

/* ESCAPE's string, one character, into esc; its length, or -1. */
static int parse_escape(struct parser *p, char esc[4])
{
    if (advance(p) != 0)
        return -1;
    struct sel_token t = p->tok;
    if (t.kind != TK_STR || t.dlen == 0 || t.dlen > 4)
        return fail(p, t.pos, "expected a one-character string after ESCAPE");
    sel_decode_string(p->text, &t, esc);
    if (sel_utf8_len(esc, t.dlen) != t.dlen)
        return fail(p, t.pos, "expected a one-character string after ESCAPE");
    return advance(p) != 0 ? -1 : (int)t.dlen;
}

static int parse_like(struct parser *p, int a, bool neg)
{
    size_t pos = p->tok.pos;
    if (p->nodes[a].type != T_ANY && p->nodes[a].type != T_STR)
        return fail(p, pos, "LIKE needs a header or a string before it");
    if (advance(p) != 0)
        return -1;
    struct sel_token pat = p->tok;
    if (pat.kind != TK_STR)
        return fail(p, pat.pos, "expected a string pattern after LIKE");
    if (advance(p) != 0)
        return -1;
    char esc[4];
    int esclen = 0;
    if (p->tok.kind == TK_ESCAPE && (esclen = parse_escape(p, esc)) < 0)
        return -1;
    size_t nels, errpos;
    if (sel_like_compile(p->text, &pat, esc, (size_t)esclen, p->els + p->nels, &nels, &errpos) != 0)
        return fail(p, errpos, "the escape character must be followed by '%%', '_' or itself");
    struct sel_node nd = {.kind = K_LIKE, .type = T_BOOL, .a = (uint16_t)a, .pos = p->nodes[a].pos};
    nd.v.s.off = (uint32_t)p->nels;
    nd.v.s.len = (uint32_t)nels;
    p->nels += nels;
    return neg ? add_not(p, add_node(p, nd)) : add_node(p, nd);
}

static int parse_is(struct parser *p, int a)
{
    size_t pos = p->tok.pos;
    if (p->nodes[a].kind != K_IDENT)
        return fail(p, pos, "only a header name can be tested with IS [NOT] NULL");
    if (advance(p) != 0)
        return -1;
    bool neg = p->tok.kind == TK_NOT;
    if (neg && advance(p) != 0)
        return -1;
    if (p->tok.kind != TK_NULL)
        return fail(p, p->tok.pos, neg ? "expected NULL after IS NOT" : "expected NULL after IS");
    if (advance(p) != 0)
        return -1;
    int r =
        add_node(p, (struct sel_node){
                        .kind = K_NULL, .type = T_BOOL, .a = (uint16_t)a, .pos = p->nodes[a].pos});
    return neg ? add_not(p, r) : r;
}

static int parse_pred(struct parser *p)
{
    int a = parse_sum(p);
    if (a < 0)
        return -1;
    uint8_t k = p->tok.kind;
    p->last_bare = false;
    if (k >= TK_EQ && k <= TK_GE) {
        size_t pos = p->tok.pos;
        if (advance(p) != 0)
            return -1;
        int b = parse_sum(p);
        p->last_bare = false;
        return b < 0 ? -1 : add_cmp(p, (uint8_t)(C_EQ + (k - TK_EQ)), a, b, pos);
    }
    bool neg = k == TK_NOT;
    if (neg) {
        if (advance(p) != 0)
            return -1;
        k = p->tok.kind;
        if (k != TK_BETWEEN && k != TK_IN && k != TK_LIKE)
            return fail(p, p->tok.pos, "expected BETWEEN, IN or LIKE after NOT");
    }
    int r;
    if (k == TK_IS)
        r = parse_is(p, a);
    else if (k == TK_BETWEEN)
        r = parse_between(p, a, neg);
    else if (k == TK_IN)
        r = parse_in(p, a, neg);
    else if (k == TK_LIKE)
        r = parse_like(p, a, neg);
    else
        r = a;
    p->last_bare = r == a; /* (the operands may have set it) */
    return r;
}

static int parse_not(struct parser *p)
{
    if (p->tok.kind != TK_NOT)
        return parse_pred(p);
    if (enter(p, p->tok.pos) != 0 || advance(p) != 0)
        return -1;
    int a = parse_not(p);
    if (a < 0 || check_cond(p, a) != 0)
        return -1;
    p->depth--;
    return add_not(p, a);
}

/* and, or: left-associative. */
static int parse_logic(struct parser *p, bool is_or)
{
    int a = is_or ? parse_logic(p, false) : parse_not(p);
    uint8_t want = is_or ? TK_OR : TK_AND;
    while (a >= 0 && p->tok.kind == want) {
        if (advance(p) != 0)
            return -1;
        int b = is_or ? parse_logic(p, false) : parse_not(p);
        if (b < 0 || check_cond(p, a) != 0 || check_cond(p, b) != 0)
            return -1;
        a = add_binary(p, is_or ? K_OR : K_AND, T_BOOL, a, b);
    }
    return a;
}

static int parse_or(struct parser *p)
{
    return parse_logic(p, true);
}

/* Copy the parse into one allocation. */
static struct stp_selector *build(const struct parser *p)
{
    size_t head = (sizeof(struct stp_selector) + 7) & ~(size_t)7;
    size_t nodes = p->nnodes * sizeof(struct sel_node);
    size_t els = p->nels * sizeof(struct sel_like_el);
    char *mem = malloc(head + nodes + els + p->nchars + 1);
    if (!mem)
        return NULL;
    struct stp_selector *s = (struct stp_selector *)mem;
    struct sel_node *n = (struct sel_node *)(mem + head);
    struct sel_like_el *e = (struct sel_like_el *)(mem + head + nodes);
    char *c = mem + head + nodes + els;
    memcpy(n, p->nodes, nodes);
    if (els)
        memcpy(e, p->els, els);
    if (p->nchars)
        memcpy(c, p->chars, p->nchars);
    *s = (struct stp_selector){.nodes = n, .els = e, .chars = c, .nnodes = (uint16_t)p->nnodes};
    return s;
}

static int compile(struct parser *p, size_t len)
{
    if (len > STP_SELECTOR_MAX_TEXT)
        return fail(p, STP_SELECTOR_MAX_TEXT, "the selector is longer than %d bytes",
                    STP_SELECTOR_MAX_TEXT);
    if (advance(p) != 0)
        return -1;
    if (p->tok.kind == TK_END)
        return fail(p, p->tok.pos, "the selector is empty");
    int root = parse_or(p);
    if (root < 0)
        return -1;
    if (p->tok.kind != TK_END)
        return fail(p, p->tok.pos, "expected %s or the end",
                    p->last_bare ? "an operator" : "AND, OR");
    return check_cond(p, root);
}

int stp_selector_compile(struct stp_selector **out, const char *text, size_t len, char *err,
                         size_t errlen)
{
    *out = NULL;
    if (err && errlen)
        err[0] = '\0';
    struct parser *p = malloc(sizeof(*p));
    if (!p)
        goto nomem;
    size_t copy = len > STP_SELECTOR_MAX_TEXT ? STP_SELECTOR_MAX_TEXT : len;
    p->len = copy;
    if (copy)
        memcpy(p->text, text, copy);
    p->text[copy] = '\0';
    p->tok = (struct sel_token){.kind = TK_END};
    p->depth = 0;
    p->last_bare = false;
    p->err = err;
    p->errlen = errlen;
    p->failed = false;
    p->nnodes = p->nels = p->nchars = 0;
    if (compile(p, len) != 0) {
        free(p);
        return STP_EINVAL;
    }
    *out = build(p);
    free(p);
    if (*out)
        return 0;
nomem:
    if (err && errlen)
        snprintf(err, errlen, "%s", "out of memory");
    return STP_ENOMEM;
}

void stp_selector_free(struct stp_selector *s)
{
    free(s);
}
