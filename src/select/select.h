/*
 * select.h - message selectors (issue 13): ActiveMQ's / JMS's SQL-92 subset
 * over STOMP headers, compiled once at SUBSCRIBE and matched per message.
 *
 * A library below the broker: no sockets, no loop, no shared state. A
 * compiled selector is immutable: any thread may match with it at once.
 *
 * The language
 *   - Identifiers are header names: [A-Za-z_$][A-Za-z0-9_$.-]*, case
 *     sensitive, at most 256 bytes. '-' and '.' belong to names because
 *     STOMP's own headers use them (content-type, message-id, reply-to), so
 *     `a-b` is the header "a-b" and subtraction of two headers needs a blank
 *     before the '-' (`a - b`, or `a -b`). An identifier that is exactly a
 *     keyword is the keyword (a header named "not" cannot be referred to);
 *     `not-x` is an identifier.
 *   - Keywords, case-insensitive: AND OR NOT IN LIKE ESCAPE BETWEEN IS NULL
 *     TRUE FALSE.
 *   - String literals in single quotes, '' for a quote, at most 1024 bytes
 *     decoded; any byte other than the closing quote is taken as is.
 *   - Numeric literals: integers (digits, no sign: `-5` is unary minus, and
 *     -9223372036854775808 is accepted) that fit in int64, and decimals
 *     `1.5`, `1.`, `.5` with an optional exponent `1e3`, `2.5E-3`, finite as
 *     doubles. No hex or octal: `010` is ten.
 *   - Operators, loosest first: OR; AND; NOT; the predicates `= <> < > <= >=`,
 *     `[NOT] BETWEEN x AND y`, `[NOT] IN (lit, ...)`, `[NOT] LIKE 'pat'
 *     [ESCAPE 'c']`, `IS [NOT] NULL` (one per operand: `a = b = c` is an
 *     error); binary `+ -`; `* /`; unary `- +`; parentheses.
 *
 * Types and values. Header values are strings (or absent). A header is
 * converted to what it is compared with or used as:
 *   - with a number (a numeric literal or arithmetic on the other side, or
 *     as an operand of + - * / and unary signs): converted when the whole
 *     value is a number in the literal syntax above with an optional leading
 *     sign (no blanks, at most 128 bytes): an integer when it has no '.' or
 *     exponent and fits int64, else a double. Anything else is UNKNOWN.
 *   - with TRUE or FALSE, or alone as a condition (`redelivered AND ...`):
 *     'true' / 'false' in any case are the booleans; anything else UNKNOWN.
 *   - with a string, or another header: compared as bytes, no conversion
 *     ('1.0' <> '1'). Write `a + 0 = b` to compare as numbers.
 * Strings are ordered as well as compared (ActiveMQ orders Strings; JMS
 * allows only = and <>): `<` and friends compare bytes, unsigned, shorter
 * prefix first, which is code point order for UTF-8 and lets ISO dates and
 * zero-padded keys be compared. Booleans take only = and <>. Literals of
 * different types compared with each other (`'1' = 1`, `TRUE = 1`), a
 * string or boolean in arithmetic, and a number or string used as a
 * condition are compile errors.
 *   - Numbers compare exactly across int64 and double (1 = 1.0). Integer
 *     arithmetic stays integral (JMS follows Java: 7 / 2 = 3, truncating),
 *     becomes double when it would overflow; division by zero and non-finite
 *     results are UNKNOWN.
 *   - `x BETWEEN a AND b` is `a <= x AND x <= b`; `NOT BETWEEN` its NOT.
 *   - `x IN (l1, l2)` is `x = l1 OR x = l2` (literals only, at most 64; a
 *     header may be listed against strings and numbers at once).
 *   - `x LIKE 'p'`: x is a header or a string; '%' matches any run of
 *     characters, '_' exactly one character (a UTF-8 sequence; a byte that
 *     is not part of a valid one counts alone); every other character matches
 *     itself, case-sensitively, and the pattern must match the whole value.
 *     With ESCAPE 'c' (one character), c before '%', '_' or c makes it
 *     literal; c before anything else, or at the end, is a compile error.
 *   - `h IS NULL` is true when header h is absent, `IS NOT NULL` when it is
 *     present (even empty); never UNKNOWN. Only a header name may precede IS.
 *     NULL appears nowhere else.
 *   - SQL's three-valued logic: a comparison with an absent header or a value
 *     that does not convert is UNKNOWN; NOT UNKNOWN is UNKNOWN; FALSE AND
 *     UNKNOWN is FALSE, TRUE OR UNKNOWN is TRUE. A message matches only when
 *     the selector is TRUE.
 * An empty (or blank) selector is an error here; whether an empty `selector`
 * header means "no selector" is the broker's choice.
 *
 * Costs. Matching never allocates and uses a bounded stack (the tree is at
 * most 256 nodes; a few KiB of buffers in leaf functions). Each node is
 * evaluated at most twice (BETWEEN's operand), so time is O(nodes + bytes of
 * the header values it reads), except LIKE: O(value characters x pattern
 * elements) worst case (no backtracking beyond the last '%'; the pattern has
 * at most 1024), and the lookups themselves: one per header reference, and
 * for a string comparison of two headers (whose pointers cannot both be held,
 * see stp_selector_lookup) two per KiB of the first. Numbers are read with
 * strtod in the process's LC_NUMERIC, which is "C" as long as nobody calls
 * setlocale.
 */
#ifndef STP_SELECT_SELECT_H
#define STP_SELECT_SELECT_H

#include <stdbool.h>
#include <stddef.h>

/* Bounds. Nodes: each operand, operator and IN item is one; a BETWEEN is
 * its three operands and three more. */
#define STP_SELECTOR_MAX_TEXT 4096   /* bytes of selector text */
#define STP_SELECTOR_MAX_NODES 256   /* tree nodes */
#define STP_SELECTOR_MAX_DEPTH 32    /* nested parentheses, NOT and unary signs */
#define STP_SELECTOR_MAX_IN 64       /* items in one IN list */
#define STP_SELECTOR_MAX_STRING 1024 /* bytes of a string literal or LIKE pattern */
#define STP_SELECTOR_MAX_IDENT 256   /* bytes of an identifier */

struct stp_selector; /* immutable once compiled */

/* Compile text[0, len). 0 and *out; or STP_EINVAL (*out NULL) and a
 * one-line message in err (errlen bytes, always NUL-terminated when errlen
 * > 0; err may be NULL) that names the 1-based character position (UTF-8
 * characters, counted from the start of the text) and what was expected,
 * e.g. "at 12: expected a value after '='". Each bound above is an error,
 * not a crash, as are integers beyond int64 and non-finite decimals.
 * STP_ENOMEM when memory runs out. */
int stp_selector_compile(struct stp_selector **out, const char *text, size_t len, char *err,
                         size_t errlen);

/* The value of header `name` of the message being matched (its first
 * occurrence), or NULL when it has none; *value_len set. The pointer stays
 * valid until the next call. During one match the answer for a name must
 * not change. */
typedef const char *(*stp_selector_lookup)(void *ctx, const char *name, size_t name_len,
                                           size_t *value_len);

/* Does the message match? True only when the selector is TRUE under the
 * three-valued logic above (UNKNOWN is not a match). Never allocates;
 * bounded time (see Costs). */
bool stp_selector_match(const struct stp_selector *s, stp_selector_lookup lookup, void *ctx);

void stp_selector_free(struct stp_selector *s); /* NULL is fine */

/* A lookup over a serialized STOMP header block as the broker keeps it:
 * lines "name:value\n" (a CR before the LF is dropped; STOMP 1.2 escapes
 * \\n \\r \\c \\\\ in names and values; any other backslash is kept as is)
 * up to the first blank line or the end of len. The name is everything
 * before the line's first ':'; a line without ':' is skipped; the first line
 * with the name wins. A value without escapes is returned in place; one with
 * escapes is decoded into scratch, and when its decoded form does not fit
 * there (over 1024 bytes) the header reads as absent. ctx is a struct
 * stp_selector_headers. O(len) per call. */
struct stp_selector_headers {
    const char *block;
    size_t len;
    char scratch[1024];
};
const char *stp_selector_header_lookup(void *ctx, const char *name, size_t name_len,
                                       size_t *value_len);

#endif
