/*
 * select_internal.h - what the selector's files share: the compiled tree,
 * the lexer, number reading and LIKE patterns. Nothing here is for the
 * broker; it includes select.h.
 *
 * A compiled selector is one allocation: the struct, its nodes, its LIKE
 * elements and its bytes (identifier names and decoded string literals).
 * Children are node indexes; a node's children always come before it, so
 * the root is the last node.
 */
#ifndef STP_SELECT_INTERNAL_H
#define STP_SELECT_INTERNAL_H

#include "select.h"

#include <stdint.h>

enum sel_kind {
    K_IDENT, /* v.s: the name */
    K_STR,   /* v.s: the decoded bytes */
    K_INT,   /* v.i */
    K_DBL,   /* v.d, finite */
    K_BOOL,  /* v.i: 0 or 1 */
    K_AND,   /* a AND b */
    K_OR,    /* a OR b */
    K_NOT,   /* NOT a */
    K_CMP,   /* a op b, op an enum sel_cmp, compared as mode says */
    K_ARITH, /* a op b, op one of '+' '-' '*' '/' */
    K_NEG,   /* -a */
    K_IN,    /* a IN (nodes b .. b+n-1, literals) */
    K_LIKE,  /* a LIKE: v.s the elements (off, len) in s->els */
    K_NULL,  /* a IS NULL (a an identifier) */
};

enum sel_cmp { C_EQ, C_NE, C_LT, C_GT, C_LE, C_GE };

/* How a comparison compares (decided from the static types). */
enum sel_mode { M_STR, M_NUM, M_BOOL };

/* Static types: what a node yields. T_ANY is a header: a string that
 * converts to what it meets. */
enum sel_type { T_BOOL, T_NUM, T_STR, T_ANY };

struct sel_node {
    uint8_t kind;
    uint8_t op;   /* K_CMP: enum sel_cmp; K_ARITH: the operator's byte */
    uint8_t mode; /* K_CMP: enum sel_mode */
    uint8_t type; /* enum sel_type */
    uint16_t a, b, n;
    uint32_t pos; /* byte offset of the node's first token, for messages */
    union {
        int64_t i;
        double d;
        struct {
            uint32_t off, len;
        } s;
    } v;
};

/* A LIKE pattern element: '%', '_', or one literal character (1-4 bytes). */
enum sel_el_kind { EL_ANY, EL_ONE, EL_LIT };
struct sel_like_el {
    uint8_t kind;
    uint8_t len;
    char c[4];
};

struct stp_selector {
    const struct sel_node *nodes;
    const struct sel_like_el *els;
    const char *chars;
    uint16_t nnodes; /* the root is nodes[nnodes - 1] */
};

/* --- lex.c --- */

enum sel_tok {
    TK_END,
    TK_IDENT,
    TK_STR, /* pos, len: the raw text between the quotes ('' still doubled) */
    TK_INT, /* u: the magnitude, at most 2^63 */
    TK_DBL, /* d */
    TK_LP,
    TK_RP,
    TK_COMMA,
    TK_EQ,
    TK_NE,
    TK_LT,
    TK_GT,
    TK_LE,
    TK_GE,
    TK_PLUS,
    TK_MINUS,
    TK_STAR,
    TK_SLASH,
    TK_AND, /* keywords from here on */
    TK_OR,
    TK_NOT,
    TK_IN,
    TK_LIKE,
    TK_ESCAPE,
    TK_BETWEEN,
    TK_IS,
    TK_NULL,
    TK_TRUE,
    TK_FALSE,
};

struct sel_token {
    uint8_t kind;
    uint32_t pos, len; /* the token's bytes in the text (TK_STR: inside the quotes) */
    uint32_t dlen;     /* TK_STR: decoded length */
    uint64_t u;
    double d;
};

/* The token starting at or after text[at] (text[len] must be a NUL: the
 * parser works on a NUL-terminated copy, for strtod). 0 and *t, or -1 with
 * t->pos the byte where the problem is and a message in why. */
int sel_lex(const char *text, size_t len, size_t at, struct sel_token *t, char *why, size_t whylen);

/* Copy a string token's decoded bytes ('' as one quote) to out. */
void sel_decode_string(const char *text, const struct sel_token *t, char *out);

/* The longest number at s[0, n) in the literal syntax (no sign): its length,
 * 0 when there is none; *is_int when it has no '.' and no exponent. */
size_t sel_scan_number(const char *s, size_t n, bool *is_int);

/* A number at run time: an int64 or a finite double. */
struct sel_num {
    bool is_int;
    int64_t i;
    double d;
};

/* Convert a whole header value (optional sign, then a number; at most 128
 * bytes). False when it is not one. */
bool sel_value_number(const char *s, size_t n, struct sel_num *out);

/* Length of the UTF-8 character at s[0, n), n > 0: 1 to 4; 1 for a byte
 * that does not start a valid sequence. */
size_t sel_utf8_len(const char *s, size_t n);

/* --- like.c --- */

/* Compile the raw pattern token into els (room for its dlen elements), with
 * the escape character esc[0, esclen) (esclen 0: none). 0 and *nels, or -1
 * with *errpos the byte offset in text of the offending escape. */
int sel_like_compile(const char *text, const struct sel_token *pat, const char *esc, size_t esclen,
                     struct sel_like_el *els, size_t *nels, size_t *errpos);

/* Does s[0, n) match the elements? O(characters x elements) at worst. */
bool sel_like_match(const struct sel_like_el *els, size_t nels, const char *s, size_t n);

#endif
