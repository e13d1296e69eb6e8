/* Unit tests of the ACL file (src/auth/acl.c): parse errors with their
 * FILE:LINE prefix, comments, blank lines, CRLF and tabs, the matching
 * semantics of `*`, `**` and `{login}`, the union of permissions, a
 * pathological pattern in bounded time, many rules, loading from a file. */
#include "auth/auth.h"
#include "stampede/error.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define RW (STP_ACL_READ | STP_ACL_WRITE)

static char err[256];

static struct stp_acl *parse_ok(const char *text)
{
    struct stp_acl *a = NULL;
    int rc = stp_acl_parse(&a, text, strlen(text), "acl", err, sizeof(err));
    cr_assert_eq(rc, 0, "parse failed: %s", err);
    cr_assert_not_null(a);
    return a;
}

/* Parsing text fails with STP_EINVAL, *out NULL, and err starting with
 * prefix and containing what. */
static void parse_bad(const char *text, size_t len, const char *prefix, const char *what)
{
    struct stp_acl *a = (struct stp_acl *)&a; /* must be overwritten */
    err[0] = '\0';
    int rc = stp_acl_parse(&a, text, len, "acl", err, sizeof(err));
    cr_assert_eq(rc, STP_EINVAL, "rc %d for [%s]", rc, text);
    cr_assert_null(a);
    cr_assert_eq(strncmp(err, prefix, strlen(prefix)), 0, "err [%s], want prefix [%s]", err,
                 prefix);
    cr_assert_not_null(strstr(err, what), "err [%s], want [%s]", err, what);
}

#define BAD(text, prefix, what) parse_bad(text, strlen(text), prefix, what)

static unsigned perms(const struct stp_acl *a, const char *login, const char *dest)
{
    return stp_acl_perms(a, login, strlen(login), dest, strlen(dest));
}

/* --- parse errors --- */

Test(acl_parse, wrong_field_count)
{
    BAD("alice read\n", "acl:1: ", "fewer than three fields");
    BAD("# c\n\nalice read /a extra\n", "acl:3: ", "more than three fields");
    BAD("alice read /a # trailing comment\n", "acl:1: ", "more than three fields");
    BAD("alice\n", "acl:1: ", "fields");
}

Test(acl_parse, unknown_permission)
{
    BAD("alice readwrite /a\nalice Read /b\n", "acl:2: ", "unknown permission");
    BAD("alice rw /b\n", "acl:1: ", "unknown permission");
    BAD("alice reads /b\n", "acl:1: ", "unknown permission");
}

Test(acl_parse, bad_login)
{
    BAD("al:ice read /a\n", "acl:1: ", "login");
    BAD("al\x01ice read /a\n", "acl:1: ", "login");
    BAD("al\x7fice read /a\n", "acl:1: ", "login");
    BAD("\xc3\xa9 read /a\n", "acl:1: ", "login");
    char line[400];
    memset(line, 'x', 257);
    strcpy(line + 257, " read /a\n");
    BAD(line, "acl:1: ", "longer than 256");
    line[256] = ' '; /* 256 bytes is fine */
    memcpy(line + 257, "read /a\n", 9);
    struct stp_acl *a = parse_ok(line);
    stp_acl_free(&a);
}

Test(acl_parse, pattern_must_start_with_slash)
{
    BAD("alice read topic/a\n", "acl:1: ", "start with '/'");
    BAD("alice read *\n", "acl:1: ", "start with '/'");
    BAD("alice read {login}\n", "acl:1: ", "start with '/'");
}

Test(acl_parse, bad_pattern_bytes_and_length)
{
    BAD("alice read /a\x01\n", "acl:1: ", "0x01");
    BAD("alice read /\xc3\xa9\n", "acl:1: ", "0xc3");
    char line[1100] = "alice read /";
    size_t n = strlen(line);
    memset(line + n, 'x', 1024);
    line[n + 1024] = '\0'; /* pattern of 1025 bytes */
    BAD(line, "acl:1: ", "longer than 1024");
    line[n + 1023] = '\0'; /* 1024 */
    struct stp_acl *a = parse_ok(line);
    stp_acl_free(&a);
}

Test(acl_parse, placeholders)
{
    BAD("alice read /queue/{user}\n", "acl:1: ", "unknown placeholder {user}");
    BAD("alice read /queue/{}\n", "acl:1: ", "unknown placeholder");
    BAD("alice read /queue/{LOGIN}\n", "acl:1: ", "unknown placeholder");
    BAD("alice read /queue/{login\n", "acl:1: ", "unbalanced '{'");
    BAD("alice read /queue/{login.{login}\n", "acl:1: ", "unbalanced '{'");
    BAD("alice read /queue/x}\n", "acl:1: ", "unbalanced '}'");
    BAD("alice read /queue/{login}}\n", "acl:1: ", "unbalanced '}'");
    struct stp_acl *a = parse_ok("* read /queue/{login}/{login}.**\n");
    stp_acl_free(&a);
}

Test(acl_parse, triple_star)
{
    BAD("alice read /topic/***\n", "acl:1: ", "'***'");
    BAD("alice read /a****b\n", "acl:1: ", "'***'");
    struct stp_acl *a = parse_ok("alice read /a**b\nalice read /*/**/*\n");
    cr_assert_eq(stp_acl_count(a), 2);
    stp_acl_free(&a);
}

Test(acl_parse, line_too_long)
{
    char *text = malloc(6000);
    cr_assert_not_null(text);
    strcpy(text, "alice read /a\n#");
    size_t n = strlen(text);
    memset(text + n, 'x', 4096); /* a comment line of 4097 bytes */
    strcpy(text + n + 4096, "\n");
    parse_bad(text, strlen(text), "acl:2: ", "longer than 4096");
    /* 4096 bytes, and a CR before the LF, are fine */
    strcpy(text + n + 4095, "\r\n");
    struct stp_acl *a = parse_ok(text);
    cr_assert_eq(stp_acl_count(a), 1);
    stp_acl_free(&a);
    free(text);
}

Test(acl_parse, too_many_rules)
{
    size_t max = 100000, per = strlen("a read /q\n");
    char *text = malloc((max + 1) * per + 1);
    cr_assert_not_null(text);
    for (size_t i = 0; i <= max; i++)
        memcpy(text + i * per, "a read /q\n", per);
    struct stp_acl *a = NULL;
    int rc = stp_acl_parse(&a, text, max * per, "acl", err, sizeof(err));
    cr_assert_eq(rc, 0, "%s", err);
    cr_assert_eq(stp_acl_count(a), max);
    stp_acl_free(&a);
    parse_bad(text, (max + 1) * per, "acl:100001: ", "more than 100000 rules");
    free(text);
}

Test(acl_parse, error_without_err_buffer)
{
    struct stp_acl *a = NULL;
    cr_assert_eq(stp_acl_parse(&a, "x", 1, "acl", NULL, 0), STP_EINVAL);
    cr_assert_null(a);
}

/* --- accepted layouts --- */

Test(acl_parse, comments_blank_lines_crlf_tabs)
{
    const char *text = "# a comment\r\n"
                       "\n"
                       "   \t \n"
                       "\t  # an indented comment\n"
                       "\r\n"
                       "alice\tread\t\t/topic/a\r\n"
                       "  bob   write  /topic/b  \t\r\n"
                       "*\treadwrite /queue/#x\n"
                       "carol read /c"; /* no final LF */
    struct stp_acl *a = parse_ok(text);
    cr_assert_eq(stp_acl_count(a), 4);
    cr_assert_eq(perms(a, "alice", "/topic/a"), STP_ACL_READ);
    cr_assert_eq(perms(a, "bob", "/topic/b"), STP_ACL_WRITE);
    cr_assert_eq(perms(a, "zed", "/queue/#x"), RW);
    cr_assert_eq(perms(a, "carol", "/c"), STP_ACL_READ);
    cr_assert_eq(perms(a, "alice", "/topic/a\r"), 0, "the CR is not part of the pattern");
    stp_acl_free(&a);
}

Test(acl_parse, empty_file_denies_everything)
{
    struct stp_acl *a = NULL;
    cr_assert_eq(stp_acl_parse(&a, "", 0, "acl", err, sizeof(err)), 0);
    cr_assert_not_null(a);
    cr_assert_eq(stp_acl_count(a), 0);
    cr_assert_eq(perms(a, "alice", "/topic/a"), 0);
    stp_acl_free(&a);
    cr_assert_null(a);
    stp_acl_free(&a); /* twice is harmless */

    a = parse_ok("# only comments\n\n");
    cr_assert_eq(stp_acl_count(a), 0);
    stp_acl_free(&a);
}

Test(acl_parse, ten_thousand_rules)
{
    size_t cap = 10000 * 64, len = 0;
    char *text = malloc(cap);
    cr_assert_not_null(text);
    for (int i = 0; i < 10000; i++)
        len += (size_t)snprintf(text + len, cap - len, "user%d readwrite /queue/u%d.**\n", i, i);
    struct stp_acl *a = NULL;
    cr_assert_eq(stp_acl_parse(&a, text, len, "acl", err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(stp_acl_count(a), 10000);
    cr_assert_eq(perms(a, "user9999", "/queue/u9999.x"), RW);
    cr_assert_eq(perms(a, "user9999", "/queue/u9998.x"), 0);
    cr_assert_eq(perms(a, "user0", "/queue/u0."), RW);
    stp_acl_free(&a);
    free(text);
}

/* --- matching --- */

struct row {
    const char *login, *dest;
    unsigned want;
};

static void check_rows(const char *text, const struct row *rows, size_t n)
{
    struct stp_acl *a = parse_ok(text);
    for (size_t i = 0; i < n; i++)
        cr_expect_eq(perms(a, rows[i].login, rows[i].dest), rows[i].want,
                     "[%s] login %s dest %s: got %u want %u", text, rows[i].login, rows[i].dest,
                     perms(a, rows[i].login, rows[i].dest), rows[i].want);
    stp_acl_free(&a);
}

#define ROWS(text, ...)                                                                            \
    do {                                                                                           \
        const struct row rows_[] = {__VA_ARGS__};                                                  \
        check_rows(text, rows_, sizeof(rows_) / sizeof(rows_[0]));                                 \
    } while (0)

#define R STP_ACL_READ

Test(acl_match, exact)
{
    ROWS("alice read /queue/a\n", {"alice", "/queue/a", R}, {"alice", "/queue/ab", 0},
         {"alice", "/queue/", 0}, {"alice", "/queue/a/", 0}, {"alice", "", 0},
         {"alice", "/Queue/a", 0}, {"alic", "/queue/a", 0}, {"alicex", "/queue/a", 0});
}

Test(acl_match, star_stays_in_one_segment)
{
    ROWS("alice read /topic/*\n", {"alice", "/topic/x", R}, {"alice", "/topic/x.y-z", R},
         {"alice", "/topic/", R}, /* `*` may match nothing */
         {"alice", "/topic/x/y", 0}, {"alice", "/topic/x/", 0}, {"alice", "/topic", 0},
         {"alice", "/queue/x", 0});
    ROWS("alice read /a/*/c\n", {"alice", "/a/b/c", R}, {"alice", "/a//c", R},
         {"alice", "/a/b/b/c", 0}, {"alice", "/a/b/cc", 0});
    ROWS("alice read /q/a*b*c\n", {"alice", "/q/abc", R}, {"alice", "/q/axxbyyc", R},
         {"alice", "/q/abcbc", R}, {"alice", "/q/ab/c", 0}, {"alice", "/q/acb", 0});
}

Test(acl_match, double_star_crosses_segments)
{
    ROWS("alice read /topic/**\n", {"alice", "/topic/x/y", R}, {"alice", "/topic/", R},
         {"alice", "/topic/x", R}, {"alice", "/topic", 0}, {"alice", "/topics/x", 0});
    ROWS("alice read /**\n", {"alice", "/", R}, {"alice", "/anything/at/all", R}, {"alice", "", 0});
    ROWS("alice read /a**b\n", {"alice", "/ab", R}, {"alice", "/a/x/b", R}, {"alice", "/a/x/", 0});
    ROWS("alice read /**/x/*\n", {"alice", "//x/", R}, {"alice", "/a/b/x/c", R},
         {"alice", "/a/b/x/c/d", 0}, {"alice", "/a/b/y/c", 0});
    ROWS("alice read /t/*.**\n", {"alice", "/t/a.b/c", R}, {"alice", "/t/.", R},
         {"alice", "/t/a/b.c", 0});
}

Test(acl_match, login_placeholder)
{
    ROWS("* readwrite /queue/{login}.**\n", {"alice", "/queue/alice.in", RW},
         {"alice", "/queue/alice.", RW}, {"alice", "/queue/alice.a/b", RW},
         {"alice", "/queue/bob.in", 0}, {"alice", "/queue/alice", 0},
         {"alice", "/queue/alicex.in", 0}, {"bob", "/queue/bob.in", RW}, {"", "/queue/.x", RW});
    /* the login is literal: its '*' and '/' are not wildcards */
    ROWS("* read /u/{login}\n", {"a*b", "/u/a*b", R}, {"a*b", "/u/axb", 0}, {"a*b", "/u/ab", 0},
         {"a/b", "/u/a/b", R}, {"a**", "/u/a**", R}, {"a**", "/u/a", 0});
    /* between wildcards (the DP) too */
    ROWS("* read /u/*/{login}/**\n", {"a*b", "/u/x/a*b/", R}, {"a*b", "/u/x/axb/", 0},
         {"a*b", "/u/x/y/a*b/z", 0}, {"a*b", "/u//a*b/z/w", R});
    ROWS("* read /u/{login}{login}\n", {"ab", "/u/abab", R}, {"ab", "/u/ab", 0});
}

Test(acl_match, login_rules)
{
    ROWS("alice read /a\n*   write /a\na*b readwrite /b\n", {"alice", "/a", RW},
         {"bob", "/a", STP_ACL_WRITE}, {"", "/a", STP_ACL_WRITE}, {"a*b", "/b", RW},
         {"axb", "/b", 0}, {"alice", "/b", 0});
}

Test(acl_match, union_of_rules)
{
    ROWS("alice read /topic/**\n* write /topic/x\n", {"alice", "/topic/x", RW},
         {"bob", "/topic/x", STP_ACL_WRITE}, {"alice", "/topic/y", R}, {"bob", "/topic/y", 0});
}

Test(acl_match, no_matching_rule)
{
    ROWS("alice read /topic/a\n", {"alice", "/topic/b", 0}, {"bob", "/topic/a", 0});
    struct stp_acl *a = parse_ok("* read /**\n");
    cr_assert_eq(stp_acl_perms(NULL, "alice", 5, "/x", 2), 0);
    cr_assert_eq(stp_acl_perms(a, NULL, 0, "/x", 2), R);
    cr_assert_eq(stp_acl_perms(a, "alice", 5, NULL, 0), 0);
    stp_acl_free(&a);
}

Test(acl_match, destination_with_any_bytes)
{
    /* destinations need not be printable: bytes match themselves */
    struct stp_acl *a = parse_ok("* read /t/*\n");
    cr_assert_eq(stp_acl_perms(a, "x", 1, "/t/\0\xff", 5), R);
    cr_assert_eq(stp_acl_perms(a, "x", 1, "/t/\0/", 5), 0);
    stp_acl_free(&a);
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

Test(acl_match, pathological_patterns_are_bounded)
{
    char dest[1001];
    memset(dest, 'a', 1000);
    dest[1000] = '\0';
    /* the literal suffix rejects the first; the trailing `**` sends the
     * second through the DP over all 1000 bytes */
    struct stp_acl *a = parse_ok("* read /**a**a**a**a**a**a**a**a**b\n"
                                 "* read /**a**a**a**a**a**a**a**a**b**\n"
                                 "* read /*a*a*a*a*a*a*a*a*a*a*a*a*b*\n"
                                 "* read /**a*a**a*a**a*a**a*a**{login}**\n");
    double worst = 0;
    for (int slash = 0; slash < 2; slash++) {
        dest[0] = slash ? '/' : 'a';
        for (int i = 0; i < 5; i++) {
            double t0 = now_ms();
            unsigned p = perms(a, "b", dest);
            double dt = now_ms() - t0;
            cr_assert_eq(p, 0);
            if (dt > worst)
                worst = dt;
        }
    }
    cr_assert_lt(worst, 10.0, "worst check took %.3f ms", worst);
    /* and it still matches when it should */
    dest[999] = 'b';
    cr_assert_eq(perms(a, "b", dest), R);
    stp_acl_free(&a);
}

Test(acl_match, long_destination_and_login)
{
    /* longer than the DP's stack buffer: the heap is used */
    size_t n = 100000;
    char *login = malloc(n + 1), *dest = malloc(2 * n + 16);
    cr_assert(login && dest);
    memset(login, 'l', n);
    login[n] = '\0';
    strcpy(dest, "/q/x/");
    memcpy(dest + 5, login, n);
    strcpy(dest + 5 + n, "/tail");
    struct stp_acl *a = parse_ok("* read /q/*/{login}/**z\n* write /q/**/{login}/*\n");
    cr_assert_eq(stp_acl_perms(a, login, n, dest, strlen(dest)), STP_ACL_WRITE);
    cr_assert_eq(stp_acl_perms(a, login, n - 1, dest, strlen(dest)), 0);
    stp_acl_free(&a);
    free(login);
    free(dest);
}

/* --- loading --- */

Test(acl_load, from_a_file)
{
    char path[] = "/tmp/stp_acl_XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    const char *text = "# test\nalice readwrite /queue/{login}.**\n* read /topic/**\n";
    cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);

    struct stp_acl *a = NULL;
    cr_assert_eq(stp_acl_load(&a, path, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(stp_acl_count(a), 2);
    cr_assert_eq(perms(a, "alice", "/queue/alice.x"), RW);
    cr_assert_eq(perms(a, "bob", "/topic/t"), R);
    stp_acl_free(&a);

    /* errors name the path */
    FILE *f = fopen(path, "a");
    cr_assert_not_null(f);
    fputs("bob read nope\n", f);
    fclose(f);
    a = (struct stp_acl *)&a;
    cr_assert_eq(stp_acl_load(&a, path, err, sizeof(err)), STP_EINVAL);
    cr_assert_null(a);
    char want[64];
    snprintf(want, sizeof(want), "%s:4: ", path);
    cr_assert_eq(strncmp(err, want, strlen(want)), 0, "err [%s]", err);
    unlink(path);
}

Test(acl_load, missing_file)
{
    struct stp_acl *a = (struct stp_acl *)&a;
    int rc = stp_acl_load(&a, "/nonexistent/stp_acl", err, sizeof(err));
    cr_assert_lt(rc, 0);
    cr_assert_null(a);
    cr_assert_str_eq(err, "/nonexistent/stp_acl: No such file or directory");
}

Test(acl_load, a_directory_is_an_error)
{
    struct stp_acl *a = NULL;
    cr_assert_lt(stp_acl_load(&a, "/tmp", err, sizeof(err)), 0);
    cr_assert_null(a);
    cr_assert_eq(strncmp(err, "/tmp: ", 6), 0, "err [%s]", err);
}

Test(acl_load, larger_than_16_mib)
{
    char path[] = "/tmp/stp_acl_big_XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    cr_assert_eq(ftruncate(fd, (16 << 20) + 1), 0);
    close(fd);
    struct stp_acl *a = NULL;
    cr_assert_eq(stp_acl_load(&a, path, err, sizeof(err)), STP_EINVAL);
    cr_assert_null(a);
    cr_assert_not_null(strstr(err, "larger than 16 MiB"), "err [%s]", err);
    unlink(path);
}
