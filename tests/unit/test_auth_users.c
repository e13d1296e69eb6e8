/* Unit tests of src/auth/users.c (issue 11): the users file's syntax and
 * its errors, lookups, the dummy hash, loading from disk. */
#include "auth/auth.h"

#include "stampede/error.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Well-formed hashes (not of any password): cheap parameters, so that the
 * dummy hash made at each load costs little. */
#define SALT "c2FsdHNhbHRzYWx0c2FsdA"
#define TAG "dGFndGFndGFndGFndGFndGFndGFndGFndGFndGFndGE"
#define H1 "$argon2id$v=19$m=8,t=1,p=1$" SALT "$" TAG
#define H2 "$argon2id$v=19$m=16,t=1,p=2$" SALT "$" TAG
#define H3 "$argon2id$v=19$m=8192,t=1,p=1$" SALT "$" TAG

static char err[512];

static struct stp_users *parse(const char *text)
{
    struct stp_users *u = NULL;
    memset(err, 0, sizeof(err));
    int rc = stp_users_parse(&u, text, strlen(text), "t.users", err, sizeof(err));
    cr_assert_eq(rc, 0, "%s", err);
    cr_assert_not_null(u);
    return u;
}

/* Parsing text fails with STP_EINVAL and exactly want in err, which quotes
 * no hash. */
static void parse_fails_n(const char *text, size_t len, const char *want)
{
    struct stp_users *u = (struct stp_users *)1;
    memset(err, 0, sizeof(err));
    int rc = stp_users_parse(&u, text, len, "t.users", err, sizeof(err));
    cr_assert_eq(rc, STP_EINVAL, "rc %d for %s", rc, want);
    cr_assert_null(u);
    cr_assert_str_eq(err, want);
    cr_assert_null(strstr(err, "$argon2"), "%s", err);
    cr_assert_null(strstr(err, SALT), "%s", err);
    cr_assert_null(strstr(err, TAG), "%s", err);
    cr_assert_null(strchr(err, '$'), "%s", err);
}

static void parse_fails(const char *text, const char *want)
{
    parse_fails_n(text, strlen(text), want);
}

static void assert_params(const char *h, const char *prefix)
{
    cr_assert(stp_password_hash_valid(h), "%s", h);
    cr_assert_eq(strncmp(h, prefix, strlen(prefix)), 0, "%s does not start with %s", h, prefix);
}

Test(users, good_file_with_comments_blank_lines_and_crlf)
{
    struct stp_users *u = parse("# users of the test broker\n"
                                "\n"
                                "alice:" H1 "\n"
                                "   \t\n"
                                "  # indented comment: with a colon\r\n"
                                "bob:" H2 "\r\n"
                                "\r\n"
                                "carol@example.com:" H3); /* no final LF */
    cr_assert_eq(stp_users_count(u), 3);
    cr_assert_str_eq(stp_users_hash(u, "alice", 5), H1);
    cr_assert_str_eq(stp_users_hash(u, "bob", 3), H2);
    cr_assert_str_eq(stp_users_hash(u, "carol@example.com", 17), H3);
    stp_users_free(&u);
    cr_assert_null(u);
    stp_users_free(&u); /* twice is harmless */
}

Test(users, lookups)
{
    struct stp_users *u = parse("al:" H1 "\nalice:" H2 "\nalice2:" H3 "\n");
    cr_assert_str_eq(stp_users_hash(u, "al", 2), H1);
    cr_assert_str_eq(stp_users_hash(u, "alice", 5), H2);
    cr_assert_str_eq(stp_users_hash(u, "alice2", 6), H3);
    cr_assert_str_eq(stp_users_hash(u, "alice2xyz", 5), H2, "the length is what counts");
    cr_assert_null(stp_users_hash(u, "a", 1));
    cr_assert_null(stp_users_hash(u, "ali", 3));
    cr_assert_null(stp_users_hash(u, "alice3", 6));
    cr_assert_null(stp_users_hash(u, "Alice", 5));
    cr_assert_null(stp_users_hash(u, "", 0));
    cr_assert_null(stp_users_hash(u, "alice\0", 6));
    stp_users_free(&u);
}

Test(users, login_edges)
{
    char text[1024];
    char login[257];
    memset(login, 'x', 256);
    login[256] = '\0';
    snprintf(text, sizeof(text), "%s:%s\n!~\"a#b*{}/.:%s\n", login, H1, H2);
    struct stp_users *u = parse(text);
    cr_assert_eq(stp_users_count(u), 2);
    cr_assert_str_eq(stp_users_hash(u, login, 256), H1);
    cr_assert_str_eq(stp_users_hash(u, "!~\"a#b*{}/.", 11), H2);
    stp_users_free(&u);
}

Test(users, errors)
{
    parse_fails("alice:" H1 "\n\nno colon here\n", "t.users:3: expected LOGIN:HASH");
    parse_fails(":" H1 "\n", "t.users:1: empty login");
    parse_fails("al ice:" H1 "\n",
                "t.users:1: login may only contain printable ASCII characters other than space");
    parse_fails(" alice:" H1 "\n",
                "t.users:1: login may only contain printable ASCII characters other than space");
    parse_fails("al\tice:" H1 "\n",
                "t.users:1: login may only contain printable ASCII characters other than space");
    parse_fails("al\x7f"
                "ice:" H1 "\n",
                "t.users:1: login may only contain printable ASCII characters other than space");
    parse_fails("j\xc3\xb6rg:" H1 "\n",
                "t.users:1: login may only contain printable ASCII characters other than space");
    parse_fails_n("a\0b:" H1 "\n", 4 + strlen(H1) + 1,
                  "t.users:1: login may only contain printable ASCII characters other than space");

    const char *bad_hash = "t.users:2: the hash is not an argon2id PHC string within the accepted "
                           "parameters (make one with `stampede hash-password`)";
    parse_fails("a:" H1 "\nb:\n", bad_hash);
    parse_fails("a:" H1 "\nb:hunter2\n", bad_hash);
    parse_fails("a:" H1 "\nb: " H1 "\n", bad_hash);
    parse_fails("a:" H1 "\nb:" H1 " \n", bad_hash);
    parse_fails("a:" H1 "\nb:" H1 "\r\r\n", bad_hash);
    parse_fails("a:" H1 "\nb:" H1 ":x\n", bad_hash);
    parse_fails("a:" H1 "\nb:$argon2i$v=19$m=8,t=1,p=1$" SALT "$" TAG "\n", bad_hash);
    parse_fails("a:" H1 "\nb:$argon2id$v=19$m=1048576,t=1,p=1$" SALT "$" TAG "\n", bad_hash);
    parse_fails_n("a:" H1 "\nb:" H1 "\0\n", 2 + strlen(H1) + 3 + strlen(H1) + 2, bad_hash);

    parse_fails("alice:" H1 "\nbob:" H2 "\n# again\nalice:" H3 "\n",
                "t.users:4: login \"alice\" already given on line 1");
    parse_fails("a:" H1 "\r\nb:" H2 "\r\nb:" H2 "\r\n",
                "t.users:3: login \"b\" already given on line 2");
}

Test(users, a_login_longer_than_256_bytes)
{
    char text[1024];
    char login[258];
    memset(login, 'x', 257);
    login[257] = '\0';
    snprintf(text, sizeof(text), "ok:%s\n\n%s:%s\n", H1, login, H1);
    parse_fails(text, "t.users:3: login longer than 256 bytes");
}

Test(users, no_users)
{
    parse_fails("", "t.users: no users");
    parse_fails("\n\n", "t.users: no users");
    parse_fails("# only a comment\r\n  # and another\n", "t.users: no users");
}

Test(users, lines_longer_than_4096_bytes)
{
    static char text[8192];
    /* a comment line of 4097 bytes */
    strcpy(text, "a:" H1 "\n#");
    size_t n = strlen(text);
    memset(text + n, 'c', 4096);
    text[n + 4096] = '\n';
    text[n + 4097] = '\0';
    parse_fails(text, "t.users:2: line longer than 4096 bytes");
    /* exactly 4096 (plus a CR) is fine */
    text[n + 4095] = '\r';
    struct stp_users *u = parse(text);
    stp_users_free(&u);
    /* a login line, no final LF */
    memset(text, 'x', 5000);
    text[5000] = '\0';
    parse_fails(text, "t.users:1: line longer than 4096 bytes");
}

Test(users, errors_are_truncated_to_errlen)
{
    struct stp_users *u = NULL;
    char small[8];
    int rc = stp_users_parse(&u, "x\n", 2, "t.users", small, sizeof(small));
    cr_assert_eq(rc, STP_EINVAL);
    cr_assert_str_eq(small, "t.users");
    rc = stp_users_parse(&u, "x\n", 2, "t.users", NULL, 0);
    cr_assert_eq(rc, STP_EINVAL);
    cr_assert_null(u);
}

Test(users, dummy_hash_has_the_first_users_parameters)
{
    struct stp_users *u = parse("# first\nbob:" H2 "\nalice:" H1 "\n");
    const char *d = stp_users_dummy_hash(u);
    cr_assert_not_null(d);
    assert_params(d, "$argon2id$v=19$m=16,t=1,p=2$");
    cr_assert_str_neq(d, H2);
    stp_users_free(&u);

    u = parse("carol:" H3 "\nalice:" H1 "\n");
    assert_params(stp_users_dummy_hash(u), "$argon2id$v=19$m=8192,t=1,p=1$");
    stp_users_free(&u);
}

Test(users, dummy_hash_of_a_real_file)
{
    /* a hash made by stp_password_hash: the dummy has its parameters and,
     * like any hash, does not verify a guess */
    char h[STP_PASSWORD_HASH_MAX], text[256];
    cr_assert_eq(stp_password_hash("secret", 6, h), 0);
    snprintf(text, sizeof(text), "alice:%s\n", h);
    struct stp_users *u = parse(text);
    const char *stored = stp_users_hash(u, "alice", 5);
    cr_assert(stp_password_verify(stored, "secret", 6));
    const char *d = stp_users_dummy_hash(u);
    assert_params(d, "$argon2id$v=19$m=19456,t=2,p=1$");
    cr_assert_not(stp_password_verify(d, "secret", 6));
    cr_assert_not(stp_password_verify(d, "", 0));
    stp_users_free(&u);
}

Test(users, two_loads_make_different_dummies)
{
    struct stp_users *a = parse("alice:" H1 "\n");
    struct stp_users *b = parse("alice:" H1 "\n");
    cr_assert_str_neq(stp_users_dummy_hash(a), stp_users_dummy_hash(b));
    stp_users_free(&a);
    stp_users_free(&b);
}

/* --- files --- */

static char path[64];

static void write_file(const char *text, size_t len)
{
    strcpy(path, "/tmp/stp-users-XXXXXX");
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, text, len), (ssize_t)len);
    close(fd);
}

Test(users_file, load)
{
    const char *text = "# test\r\nalice:" H1 "\r\nbob:" H2 "\r\n";
    write_file(text, strlen(text));
    struct stp_users *u = NULL;
    int rc = stp_users_load(&u, path, err, sizeof(err));
    unlink(path);
    cr_assert_eq(rc, 0, "%s", err);
    cr_assert_eq(stp_users_count(u), 2);
    cr_assert_str_eq(stp_users_hash(u, "bob", 3), H2);
    assert_params(stp_users_dummy_hash(u), "$argon2id$v=19$m=8,t=1,p=1$");
    stp_users_free(&u);
}

Test(users_file, errors_are_named_after_the_path)
{
    const char *text = "alice:" H1 "\nbob\n";
    write_file(text, strlen(text));
    struct stp_users *u = NULL;
    int rc = stp_users_load(&u, path, err, sizeof(err));
    unlink(path);
    cr_assert_eq(rc, STP_EINVAL);
    cr_assert_null(u);
    char want[128];
    snprintf(want, sizeof(want), "%s:2: expected LOGIN:HASH", path);
    cr_assert_str_eq(err, want);

    write_file("", 0);
    rc = stp_users_load(&u, path, err, sizeof(err));
    unlink(path);
    cr_assert_eq(rc, STP_EINVAL);
    snprintf(want, sizeof(want), "%s: no users", path);
    cr_assert_str_eq(err, want);
}

Test(users_file, missing)
{
    struct stp_users *u = (struct stp_users *)1;
    int rc = stp_users_load(&u, "/nonexistent/stampede.users", err, sizeof(err));
    cr_assert_lt(rc, 0);
    cr_assert_null(u);
    cr_assert_str_eq(err, "/nonexistent/stampede.users: No such file or directory");
}

Test(users_file, directory)
{
    struct stp_users *u = NULL;
    int rc = stp_users_load(&u, "/tmp", err, sizeof(err));
    cr_assert_lt(rc, 0);
    cr_assert_null(u);
    cr_assert_str_eq(err, "/tmp: Is a directory");
}

Test(users_file, larger_than_16_mib)
{
    write_file("", 0);
    cr_assert_eq(truncate(path, (16 << 20) + 1), 0);
    struct stp_users *u = NULL;
    int rc = stp_users_load(&u, path, err, sizeof(err));
    char want[128];
    snprintf(want, sizeof(want), "%s: larger than 16 MiB", path);
    cr_assert_eq(rc, STP_EINVAL);
    cr_assert_null(u);
    cr_assert_str_eq(err, want);
    /* exactly 16 MiB is read (and then refused for its content) */
    cr_assert_eq(truncate(path, 16 << 20), 0);
    rc = stp_users_load(&u, path, err, sizeof(err));
    unlink(path);
    cr_assert_eq(rc, STP_EINVAL);
    snprintf(want, sizeof(want), "%s:1: line longer than 4096 bytes", path);
    cr_assert_str_eq(err, want);
}
