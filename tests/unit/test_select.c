/* Unit tests of message selectors (src/select): every operator against
 * header blocks in three-valued logic (each selector X is also run as
 * NOT (X), so TRUE, FALSE and UNKNOWN are told apart), bad selectors with
 * their error positions, every bound, LIKE on a pathological pattern, the
 * header-block lookup, and string comparison of two headers through a
 * lookup whose pointers die at the next call. */
#include "select/select.h"
#include "stampede/error.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char err[256];

static struct stp_selector *compile_ok(const char *text)
{
    struct stp_selector *s = NULL;
    int rc = stp_selector_compile(&s, text, strlen(text), err, sizeof(err));
    cr_assert_eq(rc, 0, "[%s]: %s", text, err);
    cr_assert_not_null(s);
    return s;
}

static bool match_block(const struct stp_selector *s, const char *block)
{
    struct stp_selector_headers h = {.block = block, .len = strlen(block)};
    return stp_selector_match(s, stp_selector_header_lookup, &h);
}

/* 'T', 'F' or 'U': X matches, NOT (X) matches, or neither. */
static char truth(const char *sel, const char *block)
{
    char neg[512];
    snprintf(neg, sizeof(neg), "NOT (%s)", sel);
    struct stp_selector *s = compile_ok(sel), *n = compile_ok(neg);
    bool x = match_block(s, block), nx = match_block(n, block);
    stp_selector_free(s);
    stp_selector_free(n);
    cr_assert(!(x && nx), "[%s] and its NOT both match", sel);
    return x ? 'T' : nx ? 'F' : 'U';
}

struct row {
    const char *sel, *headers;
    char want;
};

static void run_table(const struct row *rows, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char got = truth(rows[i].sel, rows[i].headers);
        cr_expect_eq(got, rows[i].want, "[%s] on [%s]: got %c, want %c", rows[i].sel,
                     rows[i].headers, got, rows[i].want);
    }
}

#define RUN(rows) run_table(rows, sizeof(rows) / sizeof(rows[0]))

/* --- matching --- */

Test(select_match, strings)
{
    static const struct row rows[] = {
        {"a = 'x'", "a:x\n", 'T'},
        {"a = 'x'", "a:y\n", 'F'},
        {"a = 'x'", "b:x\n", 'U'},
        {"a = 'X'", "a:x\n", 'F'},
        {"'x' = a", "a:x\n", 'T'},
        {"'x' = a", "", 'U'},
        {"a <> 'x'", "a:y\n", 'T'},
        {"a <> 'x'", "a:x\n", 'F'},
        {"a <> 'x'", "", 'U'},
        {"a = ''", "a:\n", 'T'},
        {"a = 'it''s'", "a:it's\n", 'T'},
        {"a = ''''", "a:'\n", 'T'},
        {"a = 'x:y'", "a:x\\cy\n", 'T'},
        {"a = '1'", "a:1.0\n", 'F'},
        {"a < 'b'", "a:a\n", 'T'},
        {"a > 'b'", "a:a\n", 'F'},
        {"a <= 'a'", "a:a\n", 'T'},
        {"a >= 'ab'", "a:a\n", 'F'},
        {"a > 'a'", "a:ab\n", 'T'},
        {"a < '2024-02-01'", "a:2024-01-31\n", 'T'},
        {"a > 'z'", "a:\xc3\xa9\n", 'T'}, /* bytes, unsigned */
        {"a < 'b'", "", 'U'},
        {"'a' < 'b'", "", 'T'},
        {"content-type = 'text/plain'", "content-type:text/plain\n", 'T'},
        {"a.b = 'x' AND $c = 'y' AND _d = 'z'", "a.b:x\n$c:y\n_d:z\n", 'T'},
        {"A = 'x'", "a:x\n", 'U'},
        {"a = 'x'", "a:x\na:y\n", 'T'},
        {"a = 'y'", "a:x\na:y\n", 'F'},
        {" \t a\n=\r'x' ", "a:x\n", 'T'},
    };
    RUN(rows);
}

Test(select_match, two_headers)
{
    static const struct row rows[] = {
        {"a = b", "a:x\nb:x\n", 'T'},
        {"a = b", "a:x\nb:y\n", 'F'},
        {"a <> b", "a:x\nb:y\n", 'T'},
        {"a = b", "a:x\n", 'U'},
        {"a = b", "b:x\n", 'U'},
        {"a = a", "a:x\n", 'T'},
        {"a = b", "a:\nb:\n", 'T'},
        {"a < b", "a:10\nb:9\n", 'T'},     /* strings */
        {"a + 0 < b", "a:10\nb:9\n", 'F'}, /* numbers */
        {"a < b", "a:ab\nb:abc\n", 'T'},
        {"a > b", "a:abc\nb:ab\n", 'T'},
        {"a = b", "a:x\\ny\nb:x\\ny\n", 'T'}, /* both in the same scratch */
        {"a = b", "a:x\\ny\nb:x\\nz\n", 'F'},
    };
    RUN(rows);
}

Test(select_match, numbers)
{
    static const struct row rows[] = {
        {"a = 5", "a:5\n", 'T'},
        {"a = 5", "a:5.0\n", 'T'},
        {"a = 5", "a:05\n", 'T'},
        {"a = 5", "a:+5\n", 'T'},
        {"a = 5", "a:6\n", 'F'},
        {"a = -5", "a:-5\n", 'T'},
        {"a = 5", "a: 5\n", 'U'},
        {"a = 5", "a:5 \n", 'U'},
        {"a = 5", "a:five\n", 'U'},
        {"a = 5", "a:\n", 'U'},
        {"a = 5", "a:0x5\n", 'U'},
        {"a = 5", "a:5e\n", 'U'},
        {"a = 5", "a:.\n", 'U'},
        {"a = 5", "a:-\n", 'U'},
        {"a <> 5", "a:five\n", 'U'},
        {"a = 5", "", 'U'},
        {"a > 4.5", "a:5\n", 'T'},
        {"a < 4.5", "a:5\n", 'F'},
        {"a >= 5", "a:5\n", 'T'},
        {"a <= 4.99", "a:5\n", 'F'},
        {"a < 1e3", "a:999\n", 'T'},
        {"a = 1000", "a:1e3\n", 'T'},
        {"a = 1000", "a:1E+3\n", 'T'},
        {"a = 0.001", "a:1e-3\n", 'T'},
        {"a = .5", "a:0.5\n", 'T'},
        {"a = 0.5", "a:.5\n", 'T'},
        {"a = 1.", "a:1\n", 'T'},
        {"a = 1", "a:1.\n", 'T'},
        {"a = 010", "a:10\n", 'T'},
        {"a = 0", "a:-0\n", 'T'},
        {"a = 1.5E2", "a:150\n", 'T'},
        {"a > 9223372036854775806", "a:9223372036854775807\n", 'T'},
        {"a = 9223372036854775807", "a:9223372036854775807\n", 'T'},
        {"a = 9223372036854775807", "a:9223372036854775807.0\n", 'F'}, /* that is 2^63 */
        {"a > 9223372036854775807", "a:9223372036854775808\n", 'T'},   /* a double */
        {"a = -9223372036854775808", "a:-9223372036854775808\n", 'T'},
        {"a < -9223372036854775808", "a:-9223372036854780000\n", 'T'},
        {"a = -9223372036854775808", "a:-9223372036854775809\n", 'T'}, /* a double, rounded */
        {"a = 9007199254740993", "a:9007199254740992.0\n", 'F'},       /* exact across types */
        {"a > 9007199254740992.0", "a:9007199254740993\n", 'T'},
        {"a = 1.5", "a:1.5\n", 'T'},
        {"a > 1", "a:1.000001\n", 'T'},
        {"a < -1", "a:-1.5\n", 'T'},
        {"a = 1", "a:1e999\n", 'U'}, /* not finite */
        {"5 = 5.0", "", 'T'},
        {"a = 'x' OR a = 1", "a:1\n", 'T'},
    };
    RUN(rows);
}

Test(select_match, arithmetic)
{
    static const struct row rows[] = {
        {"a + 1 = 3", "a:2\n", 'T'},
        {"a - 1 = 1", "a:2\n", 'T'},
        {"a * 2 = 4", "a:2\n", 'T'},
        {"a / 2 = 2", "a:5\n", 'T'}, /* integer division */
        {"a / 2 = 2.5", "a:5.0\n", 'T'},
        {"7 / 2 = 3", "", 'T'},
        {"-7 / 2 = -3", "", 'T'},
        {"7 / 2.0 = 3.5", "", 'T'},
        {"a / 0 = 1", "a:5\n", 'U'},
        {"a / 0.0 > 1", "a:5\n", 'U'},
        {"a / b > 1", "a:5\nb:0.0\n", 'U'},
        {"-a = -2", "a:2\n", 'T'},
        {"- -a = 2", "a:2\n", 'T'},
        {"+a = 2", "a:2\n", 'T'},
        {"-a = 2.5", "a:-2.5\n", 'T'},
        {"-a = 2", "", 'U'},
        {"-(1.5) = -1.5", "", 'T'},
        {"2 + 3 * 4 = 14", "", 'T'},
        {"(2 + 3) * 4 = 20", "", 'T'},
        {"10 - 2 - 3 = 5", "", 'T'},
        {"12 / 2 / 3 = 2", "", 'T'},
        {"2 * -3 = -6", "", 'T'},
        {"a - b = 1", "a:3\nb:2\n", 'T'},
        {"a -b = 1", "a:3\nb:2\n", 'T'},
        {"a-b = 1", "a-b:1\na:3\nb:2\n", 'T'}, /* one identifier */
        {"a + 1 = 1", "a:x\n", 'U'},
        {"a + 1 = 1", "", 'U'},
        {"a * 2 > 9223372036854775807", "a:9223372036854775807\n", 'T'}, /* overflow: double */
        {"a + 1 > a", "a:9223372036854775807\n", 'T'},
        {"-a > 0", "a:-9223372036854775808\n", 'T'},
        {"-9223372036854775808 / -1 > 0", "", 'T'},
        {"-9223372036854775808 - 1 < -9223372036854775808", "", 'F'}, /* as doubles: equal */
        {"1e308 * 10 > 0", "", 'U'},
        {"a + 0.5 = 2", "a:1.5\n", 'T'},
    };
    RUN(rows);
}

Test(select_match, booleans)
{
    static const struct row rows[] = {
        {"a = TRUE", "a:true\n", 'T'},
        {"a = TRUE", "a:TRUE\n", 'T'},
        {"a = true", "a:True\n", 'T'},
        {"a = FALSE", "a:true\n", 'F'},
        {"a = FALSE", "a:fAlSe\n", 'T'},
        {"a = TRUE", "a:yes\n", 'U'},
        {"a = TRUE", "a:1\n", 'U'},
        {"a = TRUE", "", 'U'},
        {"a <> TRUE", "a:false\n", 'T'},
        {"TRUE = a", "a:true\n", 'T'},
        {"a", "a:true\n", 'T'},
        {"a", "a:false\n", 'F'},
        {"a", "a:1\n", 'U'},
        {"a", "", 'U'},
        {"(a)", "a:TRUE\n", 'T'},
        {"TRUE", "", 'T'},
        {"FALSE", "", 'F'},
        {"TRUE = TRUE", "", 'T'},
        {"TRUE <> FALSE", "", 'T'},
        {"(a = 1) = (b = 1)", "a:1\nb:2\n", 'F'},
        {"(a = 1) = (b = 1)", "a:2\nb:2\n", 'T'},
        {"(a = 1) = TRUE", "a:x\n", 'U'},
        {"(a = 1) <> b", "a:1\nb:false\n", 'T'},
        {"a = b", "a:true\nb:TRUE\n", 'F'}, /* two headers: strings */
    };
    RUN(rows);
}

Test(select_match, logic_three_valued)
{
    static const struct row rows[] = {
        {"a = 1 AND b = 1", "a:1\nb:1\n", 'T'},
        {"a = 1 AND b = 1", "a:1\nb:2\n", 'F'},
        {"a = 1 AND b = 1", "a:2\n", 'F'}, /* FALSE AND UNKNOWN */
        {"b = 1 AND a = 1", "a:2\n", 'F'}, /* UNKNOWN AND FALSE */
        {"a = 1 AND b = 1", "a:1\n", 'U'}, /* TRUE AND UNKNOWN */
        {"a = 1 AND b = 1", "", 'U'},
        {"a = 1 OR b = 1", "a:1\n", 'T'}, /* TRUE OR UNKNOWN */
        {"b = 1 OR a = 1", "a:1\n", 'T'}, /* UNKNOWN OR TRUE */
        {"a = 1 OR b = 1", "a:2\n", 'U'}, /* FALSE OR UNKNOWN */
        {"a = 1 OR b = 1", "a:2\nb:2\n", 'F'},
        {"a = 1 OR b = 1", "", 'U'},
        {"NOT a = 1", "a:1\n", 'F'},
        {"NOT a = 1", "a:2\n", 'T'},
        {"NOT a = 1", "", 'U'},
        {"NOT NOT a = 1", "a:1\n", 'T'},
        {"a = 1 OR b = 1 AND c = 1", "a:1\n", 'T'}, /* AND binds tighter */
        {"a = 1 OR b = 1 AND c = 1", "a:0\nb:1\nc:0\n", 'F'},
        {"(a = 1 OR b = 1) AND c = 1", "a:1\nc:0\n", 'F'},
        {"NOT a = 1 AND b = 1", "a:0\nb:1\n", 'T'}, /* (NOT a = 1) AND b = 1 */
        {"NOT a = 1 OR b = 1", "a:1\nb:1\n", 'T'},
        {"NOT (a = 1 AND b = 1)", "a:1\nb:0\n", 'T'},
        {"a = 1 and b = 1 Or c = 1", "c:1\n", 'T'},
        {"nOt a = 1", "a:2\n", 'T'},
        {"a IS NULL OR a = 1", "", 'T'},
        {"a IS NOT NULL AND a = 1", "", 'F'},
    };
    RUN(rows);
}

Test(select_match, between)
{
    static const struct row rows[] = {
        {"a BETWEEN 1 AND 3", "a:1\n", 'T'},
        {"a BETWEEN 1 AND 3", "a:3\n", 'T'},
        {"a BETWEEN 1 AND 3", "a:2.5\n", 'T'},
        {"a BETWEEN 1 AND 3", "a:0\n", 'F'},
        {"a BETWEEN 1 AND 3", "a:4\n", 'F'},
        {"a BETWEEN 1 AND 3", "", 'U'},
        {"a BETWEEN 1 AND 3", "a:x\n", 'U'},
        {"a NOT BETWEEN 1 AND 3", "a:4\n", 'T'},
        {"a NOT BETWEEN 1 AND 3", "a:2\n", 'F'},
        {"a NOT BETWEEN 1 AND 3", "", 'U'},
        {"a BETWEEN 3 AND 1", "a:2\n", 'F'},
        {"a BETWEEN -1.5 AND -0.5", "a:-1\n", 'T'},
        {"a BETWEEN 'b' AND 'd'", "a:c\n", 'T'},
        {"a BETWEEN 'b' AND 'd'", "a:e\n", 'F'},
        {"a BETWEEN b AND c", "a:5\nb:1\nc:9\n", 'T'},
        {"a BETWEEN b AND c", "a:5\nb:10\nc:9\n", 'T'}, /* strings: '10' < '5' < '9' */
        {"a BETWEEN b + 0 AND c", "a:5\nb:10\nc:9\n", 'F'},
        {"a BETWEEN 1 AND b", "a:5\n", 'U'}, /* TRUE AND UNKNOWN */
        {"a BETWEEN 1 AND b", "a:0\n", 'F'}, /* FALSE AND UNKNOWN */
        {"a BETWEEN 1 AND 3 AND b = 1", "a:2\nb:1\n", 'T'},
        {"a BETWEEN 1 AND 3 AND b = 1", "a:2\nb:2\n", 'F'},
        {"a + 1 BETWEEN 2 AND 1 + 2", "a:1\n", 'T'},
        {"a between 1 and 3", "a:2\n", 'T'},
    };
    RUN(rows);
}

Test(select_match, in)
{
    static const struct row rows[] = {
        {"a IN ('x', 'y')", "a:y\n", 'T'},
        {"a IN ('x', 'y')", "a:z\n", 'F'},
        {"a IN ('x', 'y')", "", 'U'},
        {"a IN ('x')", "a:x\n", 'T'},
        {"a NOT IN ('x', 'y')", "a:z\n", 'T'},
        {"a NOT IN ('x', 'y')", "a:x\n", 'F'},
        {"a NOT IN ('x', 'y')", "", 'U'},
        {"a IN (1, 2, 3)", "a:2\n", 'T'},
        {"a IN (1, 2, 3)", "a:2.0\n", 'T'},
        {"a IN (1, 2, 3)", "a:4\n", 'F'},
        {"a IN (1, 2, 3)", "a:x\n", 'U'},
        {"a IN ('x', 1)", "a:x\n", 'T'},
        {"a IN ('x', 1)", "a:1\n", 'T'},
        {"a IN ('x', 1)", "a:2\n", 'F'},
        {"a IN ('x', 1)", "a:y\n", 'U'}, /* 'y' = 1 is UNKNOWN */
        {"a IN ('1')", "a:1.0\n", 'F'},
        {"a IN (-1, +2, 2.5)", "a:-1\n", 'T'},
        {"a IN (-1, +2, 2.5)", "a:2\n", 'T'},
        {"a IN (-1, +2, 2.5)", "a:2.5\n", 'T'},
        {"a IN (-9223372036854775808)", "a:-9223372036854775808\n", 'T'},
        {"a + 1 IN (2, 3)", "a:1\n", 'T'},
        {"a + 1 IN (2, 3)", "a:5\n", 'F'},
        {"a + 1 IN (2, 3)", "", 'U'},
        {"'x' IN ('y', 'x')", "", 'T'},
        {"a in ('x')", "a:x\n", 'T'},
    };
    RUN(rows);
}

Test(select_match, like)
{
    static const struct row rows[] = {
        {"a LIKE 'ab%'", "a:abc\n", 'T'},
        {"a LIKE 'ab%'", "a:ab\n", 'T'},
        {"a LIKE 'ab%'", "a:xab\n", 'F'},
        {"a LIKE 'ab%'", "", 'U'},
        {"a LIKE '%b'", "a:ab\n", 'T'},
        {"a LIKE '%b'", "a:ba\n", 'F'},
        {"a LIKE 'a_c'", "a:abc\n", 'T'},
        {"a LIKE 'a_c'", "a:ac\n", 'F'},
        {"a LIKE 'a_c'", "a:abbc\n", 'F'},
        {"a LIKE '_'", "a:\xc3\xa9\n", 'T'}, /* one character, two bytes */
        {"a LIKE '__'", "a:\xc3\xa9\n", 'F'},
        {"a LIKE '_'", "a:\xe2\x82\xac\n", 'T'},
        {"a LIKE '_'", "a:\xf0\x9f\x90\x98\n", 'T'},
        {"a LIKE '_\xf0\x9f\x90\x98'", "a:x\xf0\x9f\x90\x98\n", 'T'},
        {"a LIKE '__'", "a:\xc3x\n", 'T'}, /* an invalid byte counts alone */
        {"a LIKE '\xc3\xa9_'", "a:\xc3\xa9x\n", 'T'},
        {"a LIKE 'a%b%c'", "a:aXbYc\n", 'T'},
        {"a LIKE 'a%b%c'", "a:acb\n", 'F'},
        {"a LIKE '%'", "a:\n", 'T'},
        {"a LIKE ''", "a:\n", 'T'},
        {"a LIKE ''", "a:x\n", 'F'},
        {"a LIKE '%%%a'", "a:ba\n", 'T'},
        {"a LIKE '%a%'", "a:bab\n", 'T'},
        {"a LIKE '%a%'", "a:bbb\n", 'F'},
        {"a LIKE '%ab'", "a:aab\n", 'T'},
        {"a LIKE '%aab'", "a:aaab\n", 'T'},
        {"a LIKE '%a_b%'", "a:aaxaxb\n", 'T'},
        {"a LIKE '_%_'", "a:x\n", 'F'},
        {"a LIKE '_%_'", "a:xy\n", 'T'},
        {"a LIKE 'A%'", "a:abc\n", 'F'},
        {"a LIKE 'it''s%'", "a:it's me\n", 'T'},
        {"a LIKE '100\\%' ESCAPE '\\'", "a:100%\n", 'T'},
        {"a LIKE '100\\%' ESCAPE '\\'", "a:1000\n", 'F'},
        {"a LIKE 'a\\_b' ESCAPE '\\'", "a:a_b\n", 'T'},
        {"a LIKE 'a\\_b' ESCAPE '\\'", "a:axb\n", 'F'},
        {"a LIKE 'a\\\\b' ESCAPE '\\'", "a:a\\\\b\n", 'T'},
        {"a LIKE 'x!%y%' ESCAPE '!'", "a:x%yz\n", 'T'},
        {"a LIKE 'x!%y%' ESCAPE '!'", "a:xzyz\n", 'F'},
        {"a LIKE 'x''%' ESCAPE ''''", "a:x%\n", 'T'},
        {"a LIKE 'x\xc2\xa7%' ESCAPE '\xc2\xa7'", "a:x%\n", 'T'},
        {"a LIKE '%%' ESCAPE '%'", "a:%\n", 'T'},
        {"a LIKE '%%' ESCAPE '%'", "a:x\n", 'F'},
        {"a NOT LIKE 'a%'", "a:b\n", 'T'},
        {"a NOT LIKE 'a%'", "a:a\n", 'F'},
        {"a NOT LIKE 'a%'", "", 'U'},
        {"'abc' LIKE 'a%'", "", 'T'},
        {"a like 'a%' escape '!'", "a:ab\n", 'T'},
        {"a LIKE '%:%'", "a:x\\cy\n", 'T'},
    };
    RUN(rows);
}

Test(select_match, is_null)
{
    static const struct row rows[] = {
        {"a IS NULL", "", 'T'},
        {"a IS NULL", "a:x\n", 'F'},
        {"a IS NULL", "a:\n", 'F'},
        {"a IS NOT NULL", "a:\n", 'T'},
        {"a IS NOT NULL", "", 'F'},
        {"a is not null", "a:x\n", 'T'},
        {"(a) IS NULL", "", 'T'},
        {"a IS NULL", "b:x\n\na:x\n", 'T'}, /* after the blank line is the body */
    };
    RUN(rows);
}

/* --- compile errors --- */

struct bad {
    const char *sel;
    int pos;
    const char *what;
};

static void expect_bad(const char *text, size_t len, int pos, const char *what)
{
    struct stp_selector *s = (struct stp_selector *)&s; /* must be overwritten */
    err[0] = 'x';
    err[1] = '\0';
    int rc = stp_selector_compile(&s, text, len, err, sizeof(err));
    cr_assert_eq(rc, STP_EINVAL, "[%s] compiled", text);
    cr_assert_null(s);
    char prefix[32];
    snprintf(prefix, sizeof(prefix), "at %d: ", pos);
    cr_expect_eq(strncmp(err, prefix, strlen(prefix)), 0, "[%s]: err [%s], want [%s]", text, err,
                 prefix);
    cr_expect_not_null(strstr(err, what), "[%s]: err [%s], want [%s]", text, err, what);
    cr_expect_null(strchr(err, '\n'), "one line");
}

Test(select_compile, errors_with_positions)
{
    static const struct bad rows[] = {
        {"", 1, "the selector is empty"},
        {")", 1, "expected a value"},
        {"a = 1 AND NOT #", 15, "unexpected character '#'"},
        {"a BETWEEN 1 AND #", 17, "unexpected character '#'"},
        {"a IN (1, #)", 10, "unexpected character '#'"},
        {"a LIKE 'x' ESCAPE #", 19, "unexpected character '#'"},
        {"a IS NOT #", 10, "unexpected character '#'"},
        {"   ", 4, "the selector is empty"},
        {"a =", 4, "expected a value after '='"},
        {"a = = 1", 5, "expected a value after '='"},
        {"a = 1 AND", 10, "expected a value after 'AND'"},
        {"a IN ('x',)", 11, "expected a string or a number in the IN list"},
        {"(a = 1", 7, "expected AND, OR or ')'"},
        {"(a 1)", 4, "expected an operator or ')'"},
        {"a = 1)", 6, "expected AND, OR or the end"},
        {"a b", 3, "expected an operator or the end"},
        {"a = 1 = 2", 7, "expected AND, OR or the end"},
        {"a = 'x", 5, "unterminated string literal"},
        {"a = 'x''", 5, "unterminated string literal"},
        {"a = #", 5, "unexpected character '#'"},
        {"a != 1", 3, "unexpected character '!'"},
        {"a = 1x", 5, "malformed number"},
        {"a = 1.2.3", 5, "malformed number"},
        {"a = 1e", 5, "malformed number"},
        {"a = 1_", 5, "malformed number"},
        {"a = .", 5, "unexpected character '.'"},
        {"a IN 'x'", 6, "expected '(' after IN"},
        {"a IN ()", 7, "expected a string or a number in the IN list"},
        {"a IN ('x' 'y')", 11, "expected ',' or ')' in the IN list"},
        {"a IN (b)", 7, "expected a string or a number in the IN list"},
        {"a IN (-'x')", 8, "expected a number after the sign"},
        {"a LIKE b", 8, "expected a string pattern after LIKE"},
        {"a LIKE 'x' ESCAPE 'ab'", 19, "expected a one-character string after ESCAPE"},
        {"a LIKE 'x' ESCAPE ''", 19, "expected a one-character string after ESCAPE"},
        {"a LIKE 'x' ESCAPE 1", 19, "expected a one-character string after ESCAPE"},
        {"a LIKE 'x!y' ESCAPE '!'", 10, "the escape character must be followed by '%', '_'"},
        {"a LIKE 'x!' ESCAPE '!'", 10, "the escape character must be followed by"},
        {"a LIKE '%' ESCAPE '%'", 9, "the escape character must be followed by"},
        {"a LIKE 'x''!y' ESCAPE '!'", 12, "the escape character must be followed by"},
        {"a BETWEEN 1 OR 2", 13, "expected AND in BETWEEN"},
        {"a BETWEEN 1", 12, "expected AND in BETWEEN"},
        {"a IS 1", 6, "expected NULL after IS"},
        {"a IS NOT 1", 10, "expected NULL after IS NOT"},
        {"1 IS NULL", 3, "only a header name can be tested with IS [NOT] NULL"},
        {"a + 1 IS NULL", 7, "only a header name"},
        {"a = NULL", 5, "NULL is only allowed in IS [NOT] NULL"},
        {"a NOT = 1", 7, "expected BETWEEN, IN or LIKE after NOT"},
        {"'x' = 1", 5, "cannot compare a string with a number"},
        {"a + 1 = 'x'", 7, "cannot compare a number with a string"},
        {"TRUE = 1", 6, "cannot compare a boolean with a number"},
        {"TRUE < FALSE", 6, "booleans can only be compared with = or <>"},
        {"a < TRUE", 3, "booleans can only be compared with = or <>"},
        {"(a = 1) BETWEEN TRUE AND FALSE", 9, "booleans can only be compared"},
        {"a = 1 AND 2", 11, "expected a condition, found a number"},
        {"2 OR a", 1, "expected a condition, found a number"},
        {"'x'", 1, "expected a condition, found a string"},
        {"a + 1", 1, "expected a condition, found a number"},
        {"NOT 1", 5, "expected a condition, found a number"},
        {"'x' + 1 = 2", 1, "expected a number, found a string"},
        {"a + 'x' = 2", 5, "expected a number, found a string"},
        {"-'x' = 1", 2, "expected a number, found a string"},
        {"(a = 1) + 1 = 2", 2, "expected a number, found a boolean"},
        {"5 LIKE 'x'", 3, "LIKE needs a header or a string before it"},
        {"TRUE IN ('x')", 6, "IN needs a header, a string or a number before it"},
        {"'x' IN (1)", 9, "cannot compare a string with a number"},
        {"a + 1 IN ('x')", 11, "cannot compare a number with a string"},
        {"a = 9223372036854775808", 5, "the integer does not fit in 64 bits"},
        {"a = 99999999999999999999", 5, "the integer does not fit in 64 bits"},
        {"a = -(9223372036854775808)", 7, "the integer does not fit in 64 bits"},
        {"a IN (9223372036854775808)", 7, "the integer does not fit in 64 bits"},
        {"a = 1e309", 5, "the number is not finite"},
        {"a = -1e309", 6, "the number is not finite"},
        {"\xc3\xa9 = 1", 1, "unexpected byte 0xc3"},
        {"a = '\xc3\xa9' AND #", 13, "unexpected character '#'"}, /* characters, not bytes */
        {"a = 1 AND b = \x01", 15, "unexpected byte 0x01"},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
        expect_bad(rows[i].sel, strlen(rows[i].sel), rows[i].pos, rows[i].what);
    expect_bad("a = 1\0", 6, 6, "unexpected byte 0x00");
    expect_bad("a = '\0", 6, 5, "unterminated string literal");
}

Test(select_compile, error_buffer_small_or_absent)
{
    struct stp_selector *s;
    char small[6];
    memset(small, 'x', sizeof(small));
    cr_assert_eq(stp_selector_compile(&s, "a =", 3, small, sizeof(small)), STP_EINVAL);
    cr_assert_str_eq(small, "at 4:");
    cr_assert_eq(stp_selector_compile(&s, "a =", 3, NULL, 0), STP_EINVAL);
    cr_assert_eq(stp_selector_compile(&s, "a =", 3, small, 0), STP_EINVAL);
    cr_assert_eq(small[0], 'a'); /* untouched */
    cr_assert_eq(stp_selector_compile(&s, "a = 1", 5, NULL, 0), 0);
    stp_selector_free(s);
    stp_selector_free(NULL);
}

Test(select_compile, ok_clears_err)
{
    strcpy(err, "stale");
    struct stp_selector *s = compile_ok("a = 1");
    cr_assert_str_eq(err, "");
    stp_selector_free(s);
}

/* --- bounds --- */

static int try_compile(const char *text, size_t len)
{
    struct stp_selector *s = NULL;
    int rc = stp_selector_compile(&s, text, len, err, sizeof(err));
    stp_selector_free(s);
    return rc;
}

Test(select_bounds, text_length)
{
    char *t = malloc(5000);
    memset(t, ' ', 5000);
    memcpy(t, "a = 1", 5);
    cr_assert_eq(try_compile(t, 4096), 0, "%s", err);
    cr_assert_eq(try_compile(t, 4097), STP_EINVAL);
    cr_assert_str_eq(err, "at 4097: the selector is longer than 4096 bytes");
    /* The position counts characters. */
    memcpy(t, "a = '\xc3\xa9'", 8);
    cr_assert_eq(try_compile(t, 4097), STP_EINVAL);
    cr_assert_str_eq(err, "at 4096: the selector is longer than 4096 bytes");
    free(t);
}

/* "a OR a OR ... a" with n identifiers: 2n - 1 nodes. */
static char *or_chain(int n, const char *head)
{
    char *t = malloc(16 + 5 * (size_t)n);
    strcpy(t, head);
    for (int i = 0; i < n; i++)
        strcat(t, i ? " OR a" : "a");
    return t;
}

Test(select_bounds, nodes)
{
    char *t = or_chain(128, "NOT "); /* 255 + NOT */
    cr_assert_eq(try_compile(t, strlen(t)), 0, "%s", err);
    free(t);
    t = or_chain(129, ""); /* 257 */
    cr_assert_eq(try_compile(t, strlen(t)), STP_EINVAL);
    cr_assert_not_null(strstr(err, "more than 256 nodes"), "%s", err);
    cr_assert_eq(strncmp(err, "at 641: ", 8), 0, "%s", err); /* the 129th a */
    free(t);
    /* A BETWEEN counts its comparisons and their AND. */
    cr_assert_eq(try_compile("a BETWEEN 1 AND 2", 17), 0);
    struct stp_selector *s;
    cr_assert_eq(stp_selector_compile(&s, "a BETWEEN 1 AND 2", 17, err, sizeof(err)), 0);
    stp_selector_free(s);
}

static void nested(const char *open, const char *mid, const char *close, int depth, int rc)
{
    char t[1024] = "";
    for (int i = 0; i < depth; i++)
        strcat(t, open);
    strcat(t, mid);
    for (int i = 0; i < depth && *close; i++)
        strcat(t, close);
    cr_assert_eq(try_compile(t, strlen(t)), rc, "depth %d [%s]: %s", depth, t, err);
    if (rc)
        cr_assert_not_null(strstr(err, "nested more than 32 deep"), "%s", err);
}

Test(select_bounds, nesting)
{
    nested("(", "a = 1", ")", 32, 0);
    nested("(", "a = 1", ")", 33, STP_EINVAL);
    cr_assert_eq(strncmp(err, "at 33: ", 7), 0, "%s", err);
    nested("NOT ", "a", "", 32, 0);
    nested("NOT ", "a", "", 33, STP_EINVAL);
    nested("-", "a = 1", "", 32, 0);
    nested("-", "a = 1", "", 33, STP_EINVAL);
    nested("(NOT ", "a", ")", 16, 0);
    nested("(NOT ", "a", ")", 17, STP_EINVAL);
    /* Depth is nesting, not length: 100 parenthesized terms in a row. */
    char *t = malloc(2000);
    t[0] = '\0';
    for (int i = 0; i < 100; i++)
        strcat(t, i ? " OR (a)" : "(a)");
    cr_assert_eq(try_compile(t, strlen(t)), 0, "%s", err);
    free(t);
}

Test(select_bounds, in_list)
{
    char t[1024];
    strcpy(t, "a IN (");
    for (int i = 0; i < 64; i++)
        sprintf(t + strlen(t), i ? ",%d" : "%d", i);
    strcat(t, ")");
    struct stp_selector *s = compile_ok(t);
    cr_assert(match_block(s, "a:63\n"));
    cr_assert(!match_block(s, "a:64\n"));
    stp_selector_free(s);
    t[strlen(t) - 1] = '\0';
    strcat(t, ",64)");
    cr_assert_eq(try_compile(t, strlen(t)), STP_EINVAL);
    cr_assert_not_null(strstr(err, "more than 64 items in the IN list"), "%s", err);
    char want[16];
    snprintf(want, sizeof(want), "at %zu: ", strlen(t) - 2);
    cr_assert_eq(strncmp(err, want, strlen(want)), 0, "%s", err);
}

Test(select_bounds, string_and_pattern)
{
    char t[4096], block[2048];
    char v[1100];
    memset(v, 'x', 1024);
    v[1024] = '\0';
    snprintf(t, sizeof(t), "a = '%s'", v);
    snprintf(block, sizeof(block), "a:%s\n", v);
    struct stp_selector *s = compile_ok(t);
    cr_assert(match_block(s, block));
    stp_selector_free(s);
    /* 1024 decoded bytes, with quotes doubled. */
    memset(v, '\'', 1024);
    v[1024] = '\0';
    snprintf(t, sizeof(t), "a = '%s%s'", v, v);
    cr_assert_eq(try_compile(t, strlen(t)), 0, "%s", err);
    snprintf(t, sizeof(t), "a = '%s%s'''", v, v);
    cr_assert_eq(try_compile(t, strlen(t)), STP_EINVAL);
    memset(v, 'x', 1025);
    v[1025] = '\0';
    snprintf(t, sizeof(t), "a = '%s'", v);
    cr_assert_eq(try_compile(t, strlen(t)), STP_EINVAL);
    cr_assert_str_eq(err, "at 5: the string is longer than 1024 bytes");
    v[1024] = '\0';
    snprintf(t, sizeof(t), "a LIKE '%s'", v);
    cr_assert_eq(try_compile(t, strlen(t)), 0, "%s", err);
    v[1024] = '%';
    snprintf(t, sizeof(t), "a LIKE '%s'", v);
    cr_assert_eq(try_compile(t, strlen(t)), STP_EINVAL);
    cr_assert_str_eq(err, "at 8: the string is longer than 1024 bytes");
}

Test(select_bounds, identifier)
{
    char t[600], name[300], block[600];
    memset(name, 'h', 256);
    name[256] = '\0';
    snprintf(t, sizeof(t), "%s = 1", name);
    snprintf(block, sizeof(block), "%s:1\n", name);
    struct stp_selector *s = compile_ok(t);
    cr_assert(match_block(s, block));
    stp_selector_free(s);
    snprintf(t, sizeof(t), "a = 1 OR %sh = 1", name);
    cr_assert_eq(try_compile(t, strlen(t)), STP_EINVAL);
    cr_assert_str_eq(err, "at 10: the identifier is longer than 256 bytes");
}

Test(select_bounds, numbers)
{
    static const char *ok[] = {
        "a = 9223372036854775807",
        "a = -9223372036854775808",
        "a = 1e308",
        "a = -1.7976931348623157e308",
        "a = 1e-400", /* underflows to zero: finite */
        "a = 00000000000000000000000000001",
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        cr_expect_eq(try_compile(ok[i], strlen(ok[i])), 0, "[%s]: %s", ok[i], err);
    expect_bad("a = 9223372036854775808", 23, 5, "does not fit");
    expect_bad("a = 1.8e308", 11, 5, "not finite");
}

/* --- LIKE cost --- */

Test(select_like, pathological_pattern_is_linear_enough)
{
    static char block[1100];
    strcpy(block, "a:");
    memset(block + 2, 'a', 1000);
    block[1002] = '\n';
    block[1003] = '\0';
    struct stp_selector *s = compile_ok("a LIKE '%a%a%a%a%a%a%a%a%a%b'");
    for (int i = 0; i < 100; i++) /* a backtracking matcher would never finish one */
        cr_assert(!match_block(s, block));
    block[1001] = 'b';
    cr_assert(match_block(s, block));
    stp_selector_free(s);
    s = compile_ok("a LIKE '%a_a_a_a_a_a_a_a_a_a_a_a_a_a_a_a_a_a_a_a_a_a_a_a_a_a_a_a_a_a_a_b'");
    block[1001] = 'a';
    cr_assert(!match_block(s, block));
    stp_selector_free(s);
}

/* --- the header-block lookup --- */

static const char *look(struct stp_selector_headers *h, const char *block, const char *name,
                        size_t *n)
{
    h->block = block;
    h->len = strlen(block);
    return stp_selector_header_lookup(h, name, strlen(name), n);
}

static void expect_value(const char *block, const char *name, const char *want, size_t wlen)
{
    struct stp_selector_headers h;
    size_t n = 99;
    const char *v = look(&h, block, name, &n);
    if (!want) {
        cr_expect_null(v, "[%s] in [%s]", name, block);
        cr_expect_eq(n, 0);
        return;
    }
    cr_assert_not_null(v, "[%s] in [%s]", name, block);
    cr_expect_eq(n, wlen, "[%s] in [%s]: len %zu", name, block, n);
    cr_expect_eq(memcmp(v, want, wlen), 0, "[%s] in [%s]: [%.*s]", name, block, (int)n, v);
}

#define VAL(block, name, want) expect_value(block, name, want, sizeof(want) - 1)
#define NONE(block, name) expect_value(block, name, NULL, 0)

Test(select_headers, lookup)
{
    VAL("a:1\nb:2\n\n", "b", "2");
    VAL("a:1\na:2\n", "a", "1"); /* the first wins */
    NONE("a:1\nb:2\n", "c");
    NONE("", "a");
    NONE("a:1\n\nb:2\n", "b"); /* the blank line ends the headers */
    VAL("a:1\r\nb:2\r\n\r\nc:3", "b", "2");
    NONE("a:1\r\nb:2\r\n\r\nc:3", "c");
    VAL("a:b:c\n", "a", "b:c");
    VAL("a:\n", "a", "");
    VAL("a:1", "a", "1");
    VAL("junk\na:1\n", "a", "1");
    NONE("ab:1\n", "a");
    NONE("a:1\n", "ab");
    NONE(":1\n", "a");
    VAL("a:x\\ty\n", "a", "x\\ty"); /* an undefined escape stays */
    VAL("a:x\\\n", "a", "x\\");     /* as does a final backslash */
    VAL("a\\cb:1\n", "a:b", "1");   /* an escaped name */
    NONE("a\\cb:1\n", "a\\cb");
    VAL("a\\\\b:1\n", "a\\b", "1");
    VAL("x\\ny:1\n", "x\ny", "1");
}

Test(select_headers, escapes_decoded_into_scratch)
{
    struct stp_selector_headers h;
    size_t n;
    const char *block = "a:x\\ny\\cz\\\\w\\r\nb:plain\n";
    const char *v = look(&h, block, "a", &n);
    cr_assert_eq(v, h.scratch);
    cr_assert_eq(n, 8);
    cr_assert_eq(memcmp(v, "x\ny:z\\w\r", 8), 0);
    v = look(&h, block, "b", &n);
    cr_assert_eq(v, block + strlen("a:x\\ny\\cz\\\\w\\r\nb:")); /* in place */
}

Test(select_headers, long_values)
{
    char *block = malloc(8000);
    strcpy(block, "a:");
    memset(block + 2, 'v', 5000);
    strcpy(block + 5002, "\nb:");
    memset(block + 5005, 'w', 1023);
    strcpy(block + 5005 + 1023, "\\n\nc:");
    memset(block + 5005 + 1023 + 5, 'w', 1024);
    strcpy(block + 5005 + 1023 + 5 + 1024, "\\n\n");
    struct stp_selector_headers h;
    size_t n;
    const char *v = look(&h, block, "a", &n);
    cr_assert_eq(n, 5000); /* no escapes: in place, any length */
    cr_assert_eq(v, block + 2);
    v = look(&h, block, "b", &n);
    cr_assert_eq(n, 1024); /* fills the scratch exactly */
    cr_assert_eq(v[1023], '\n');
    v = look(&h, block, "c", &n);
    cr_assert_null(v); /* does not fit: absent */
    cr_assert_eq(n, 0);
    free(block);
}

/* --- a lookup whose pointers die at the next call --- */

struct hostile {
    const char *names[2];
    const char *values[2];
    size_t lens[2];
    char buf[8192];
    int calls;
};

static const char *hostile_lookup(void *ctx, const char *name, size_t name_len, size_t *value_len)
{
    struct hostile *h = ctx;
    h->calls++;
    memset(h->buf, '#', sizeof(h->buf)); /* whatever was returned before is gone */
    for (int i = 0; i < 2; i++) {
        if (h->values[i] && strlen(h->names[i]) == name_len &&
            memcmp(h->names[i], name, name_len) == 0) {
            memcpy(h->buf, h->values[i], h->lens[i]);
            *value_len = h->lens[i];
            return h->buf;
        }
    }
    *value_len = 0;
    return NULL;
}

static int ref_cmp(const char *a, size_t la, const char *b, size_t lb)
{
    size_t m = la < lb ? la : lb;
    int r = memcmp(a, b, m);
    return r ? (r < 0 ? -1 : 1) : (la > lb) - (la < lb);
}

Test(select_match, two_headers_through_a_hostile_lookup)
{
    static char va[5000], vb[5000];
    static const size_t lens[] = {0, 1, 1023, 1024, 1025, 2047, 2048, 2049, 3000, 5000};
    static const char *ops[] = {"a = b", "a <> b", "a < b", "a > b", "a <= b", "a >= b"};
    struct stp_selector *sels[6];
    for (int k = 0; k < 6; k++)
        sels[k] = compile_ok(ops[k]);
    memset(va, 'q', sizeof(va));
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        for (size_t j = 0; j < sizeof(lens) / sizeof(lens[0]); j++) {
            for (int diff = 0; diff < 3; diff++) {
                memset(vb, 'q', sizeof(vb));
                size_t at = lens[j] / 2; /* diff 1: b smaller there, 2: bigger */
                if (diff && lens[j])
                    vb[at] = diff == 1 ? 'a' : 'z';
                struct hostile h = {
                    .names = {"a", "b"}, .values = {va, vb}, .lens = {lens[i], lens[j]}};
                int c = ref_cmp(va, lens[i], vb, lens[j]);
                bool want[6] = {c == 0, c != 0, c<0, c> 0, c <= 0, c >= 0};
                for (int k = 0; k < 6; k++)
                    cr_expect_eq(stp_selector_match(sels[k], hostile_lookup, &h), want[k],
                                 "%s with %zu and %zu bytes, diff %d", ops[k], lens[i], lens[j],
                                 diff);
            }
        }
    }
    struct hostile h = {.names = {"a", "b"}, .values = {va, NULL}, .lens = {10, 0}};
    cr_assert(!stp_selector_match(sels[0], hostile_lookup, &h));
    cr_assert(!stp_selector_match(sels[1], hostile_lookup, &h));
    for (int k = 0; k < 6; k++)
        stp_selector_free(sels[k]);
}

Test(select_match, string_literal_is_compiled_once)
{
    /* The compiled selector does not point into the text it came from. */
    char text[] = "a = 'xyz' AND b LIKE 'p%'";
    struct stp_selector *s = compile_ok(text);
    memset(text, '?', sizeof(text) - 1);
    cr_assert(match_block(s, "a:xyz\nb:pq\n"));
    stp_selector_free(s);
}

/* --- LIKE against a reference --- */

/* Split s into characters the way the selector does (UTF-8 sequences of 2
 * or 3 bytes from the alphabets below; other bytes alone). */
static size_t ref_chars(const char *s, size_t n, const char *out[], size_t lens[])
{
    size_t k = 0;
    for (size_t i = 0; i < n; k++) {
        unsigned char c = (unsigned char)s[i];
        size_t l = 1;
        if (c >= 0xc2 && c <= 0xdf && i + 1 < n && ((unsigned char)s[i + 1] & 0xc0) == 0x80)
            l = 2;
        out[k] = s + i;
        lens[k] = l;
        i += l;
    }
    return k;
}

/* The textbook DP: d[i][j] = pattern[0, i) matches value[0, j). */
static bool ref_like(const char *p, size_t pn, const char *v, size_t vn)
{
    const char *pc[64], *vc[64];
    size_t pl[64], vl[64];
    size_t np = ref_chars(p, pn, pc, pl), nv = ref_chars(v, vn, vc, vl);
    bool d[65][65] = {{false}};
    d[0][0] = true;
    for (size_t i = 1; i <= np; i++) {
        bool any = pl[i - 1] == 1 && *pc[i - 1] == '%';
        bool one = pl[i - 1] == 1 && *pc[i - 1] == '_';
        for (size_t j = 0; j <= nv; j++) {
            if (any)
                d[i][j] = d[i - 1][j] || (j > 0 && d[i][j - 1]);
            else if (j > 0)
                d[i][j] =
                    d[i - 1][j - 1] && (one || (pl[i - 1] == vl[j - 1] &&
                                                memcmp(pc[i - 1], vc[j - 1], pl[i - 1]) == 0));
        }
    }
    return d[np][nv];
}

static size_t random_text(char *out, size_t max, const char *const *alphabet, size_t na)
{
    size_t n = 0, want = (size_t)rand() % max;
    for (size_t i = 0; i < want; i++) {
        const char *a = alphabet[(size_t)rand() % na];
        memcpy(out + n, a, strlen(a));
        n += strlen(a);
    }
    return n;
}

Test(select_like, agrees_with_a_reference_dp)
{
    static const char *const pat_alpha[] = {"a", "b", "%", "_", "\xc3\xa9", "%"};
    static const char *const val_alpha[] = {"a", "b", "\xc3\xa9", "\xc3", "\xa9", "%", "_"};
    srand(13);
    for (int round = 0; round < 20000; round++) {
        char p[64], v[64], sel[128], block[128];
        size_t pn = random_text(p, 12, pat_alpha, 6);
        size_t vn = random_text(v, 14, val_alpha, 7);
        snprintf(sel, sizeof(sel), "a LIKE '%.*s'", (int)pn, p);
        snprintf(block, sizeof(block), "a:%.*s\n", (int)vn, v);
        struct stp_selector *s = compile_ok(sel);
        bool want = ref_like(p, pn, v, vn);
        cr_assert_eq(match_block(s, block), want, "[%s] on [%.*s]: want %d", sel, (int)vn, v, want);
        stp_selector_free(s);
    }
}
