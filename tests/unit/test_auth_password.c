/* Unit tests of src/auth/password.c (issue 11): argon2id hashing and
 * verification, the strict PHC parser and `stampede hash-password`. */
#include "auth/auth.h"

#include <argon2.h>
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PREFIX "$argon2id$v=19$m=19456,t=2,p=1$"

/* A valid string (salt and tag are 16 and 32 zero bytes, not a real hash). */
#define SALT16 "AAAAAAAAAAAAAAAAAAAAAA"
#define TAG32 "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
#define GOOD "$argon2id$v=19$m=19456,t=2,p=1$" SALT16 "$" TAG32

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

Test(password, hash_then_verify)
{
    char h[STP_PASSWORD_HASH_MAX];
    double t0 = now_ms();
    cr_assert_eq(stp_password_hash("correct horse", 13, h), 0);
    double t1 = now_ms();
    cr_assert(stp_password_verify(h, "correct horse", 13));
    double t2 = now_ms();
    cr_log_info("argon2id m=19456 t=2 p=1: hash %.1f ms, verify %.1f ms", t1 - t0, t2 - t1);
    fprintf(stderr, "argon2id m=19456 t=2 p=1: hash %.1f ms, verify %.1f ms\n", t1 - t0, t2 - t1);
}

Test(password, wrong_password_is_false)
{
    char h[STP_PASSWORD_HASH_MAX];
    cr_assert_eq(stp_password_hash("secret", 6, h), 0);
    cr_assert_not(stp_password_verify(h, "Secret", 6));
    cr_assert_not(stp_password_verify(h, "secre", 5));
    cr_assert_not(stp_password_verify(h, "secret!", 7));
    cr_assert_not(stp_password_verify(h, "", 0));
}

Test(password, empty_password_and_binary_bytes_hash)
{
    char h[STP_PASSWORD_HASH_MAX];
    cr_assert_eq(stp_password_hash("", 0, h), 0);
    cr_assert(stp_password_verify(h, "", 0));
    cr_assert_eq(stp_password_hash("a\0b", 3, h), 0);
    cr_assert(stp_password_verify(h, "a\0b", 3));
    cr_assert_not(stp_password_verify(h, "a", 1));
}

Test(password, two_hashes_of_one_password_differ)
{
    char a[STP_PASSWORD_HASH_MAX], b[STP_PASSWORD_HASH_MAX];
    cr_assert_eq(stp_password_hash("secret", 6, a), 0);
    cr_assert_eq(stp_password_hash("secret", 6, b), 0);
    cr_assert_str_neq(a, b);
    cr_assert(stp_password_verify(a, "secret", 6));
    cr_assert(stp_password_verify(b, "secret", 6));
}

Test(password, format)
{
    char h[STP_PASSWORD_HASH_MAX];
    cr_assert_eq(stp_password_hash("secret", 6, h), 0);
    cr_assert(stp_password_hash_valid(h), "%s", h);
    cr_assert_eq(strncmp(h, PREFIX, strlen(PREFIX)), 0, "%s", h);
    /* 16-byte salt (22 digits), 32-byte tag (43 digits), unpadded */
    cr_assert_eq(strlen(h), strlen(PREFIX) + 22 + 1 + 43, "%s", h);
    cr_assert_null(strchr(h + strlen(PREFIX), '='));
}

Test(password, valid_accepts_the_bounds)
{
    cr_assert(stp_password_hash_valid(GOOD));
    cr_assert(stp_password_hash_valid("$argon2id$v=19$m=8,t=1,p=1$AAAAAAAAAAA$" SALT16));
    cr_assert(stp_password_hash_valid("$argon2id$v=19$m=32,t=10,p=4$" SALT16 "$" TAG32));
    cr_assert(stp_password_hash_valid("$argon2id$v=19$m=262144,t=1,p=1$" SALT16 "$" TAG32));
    /* 64-byte tag: 86 digits */
    cr_assert(stp_password_hash_valid("$argon2id$v=19$m=8,t=1,p=1$AAAAAAAAAAA$"
                                      "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
                                      "AAAAAAAAAAAAAAAAAAAAAAAAAA"));
    /* 23 digits: 17 bytes, the 2 spare bits zero */
    cr_assert(stp_password_hash_valid("$argon2id$v=19$m=8,t=1,p=1$AAAAAAAAAAAAAAAAAAAAAAA$" TAG32));
    /* every base64 digit */
    cr_assert(stp_password_hash_valid("$argon2id$v=19$m=8,t=1,p=1$AZaz09+/AZaz$" TAG32));
}

Test(password, valid_rejects)
{
    static const char *bad[] = {
        "",
        "$argon2i$v=19$m=19456,t=2,p=1$" SALT16 "$" TAG32,
        "$argon2d$v=19$m=19456,t=2,p=1$" SALT16 "$" TAG32,
        "$argon2$v=19$m=19456,t=2,p=1$" SALT16 "$" TAG32,
        "$argon2id$v=16$m=19456,t=2,p=1$" SALT16 "$" TAG32,
        "$argon2id$m=19456,t=2,p=1$" SALT16 "$" TAG32, /* no version */
        "$argon2id$v=019$m=19456,t=2,p=1$" SALT16 "$" TAG32,
        "$argon2id$v=19$m=1048576,t=2,p=1$" SALT16 "$" TAG32,
        "$argon2id$v=19$m=262145,t=2,p=1$" SALT16 "$" TAG32,
        "$argon2id$v=19$m=4294967296,t=2,p=1$" SALT16 "$" TAG32,
        "$argon2id$v=19$m=99999999999999999999,t=2,p=1$" SALT16 "$" TAG32,
        "$argon2id$v=19$m=7,t=1,p=1$" SALT16 "$" TAG32,
        "$argon2id$v=19$m=31,t=1,p=4$" SALT16 "$" TAG32, /* m < 8p */
        "$argon2id$v=19$m=019456,t=2,p=1$" SALT16 "$" TAG32,
        "$argon2id$v=19$m=-1,t=2,p=1$" SALT16 "$" TAG32,
        "$argon2id$v=19$m=+19456,t=2,p=1$" SALT16 "$" TAG32,
        "$argon2id$v=19$m=,t=2,p=1$" SALT16 "$" TAG32,
        "$argon2id$v=19$m=19456,t=0,p=1$" SALT16 "$" TAG32,
        "$argon2id$v=19$m=19456,t=11,p=1$" SALT16 "$" TAG32,
        "$argon2id$v=19$m=19456,t=2,p=0$" SALT16 "$" TAG32,
        "$argon2id$v=19$m=19456,t=2,p=5$" SALT16 "$" TAG32,
        "$argon2id$v=19$t=2,m=19456,p=1$" SALT16 "$" TAG32,
        "$argon2id$v=19$m=19456,t=2,p=1,keyid=x$" SALT16 "$" TAG32,
        "$argon2id$v=19$m=19456, t=2,p=1$" SALT16 "$" TAG32,
        "$argon2id$v=19$m=19456,t=2,p=1$AAAAAAAAAA-AAAAAAAAAAA$" TAG32, /* url-safe digit */
        "$argon2id$v=19$m=19456,t=2,p=1$AAAAAAAAAA_AAAAAAAAAAA$" TAG32,
        "$argon2id$v=19$m=19456,t=2,p=1$AAAAAAAAAA AAAAAAAAAAA$" TAG32,
        "$argon2id$v=19$m=19456,t=2,p=1$AAAAAAAAAAAAAAAAAAAAAA==$" TAG32, /* padding */
        "$argon2id$v=19$m=19456,t=2,p=1$" SALT16 "$" TAG32 "=",
        "$argon2id$v=19$m=19456,t=2,p=1$" SALT16 "$" TAG32 "$",
        "$argon2id$v=19$m=19456,t=2,p=1$" SALT16 "$" TAG32 " ",
        "$argon2id$v=19$m=19456,t=2,p=1$" SALT16 "$" TAG32 "\n",
        "$argon2id$v=19$m=19456,t=2,p=1$" SALT16 "$" TAG32 "$AAAA",
        "$argon2id$v=19$m=19456,t=2,p=1$AAAAAAAAAAAAAAAAAAAAAB$" TAG32,    /* non-zero spare bits */
        "$argon2id$v=19$m=19456,t=2,p=1$AAAAAAAAAAAAAAAAAAAAAAAAA$" TAG32, /* 4n+1 digits */
        "$argon2id$v=19$m=19456,t=2,p=1$AAAAAAAAAAA$" TAG32 "AA",          /* tag 4n+1 */
        "$argon2id$v=19$m=19456,t=2,p=1$AAAAAAAAAA$" TAG32,                /* salt 7 bytes */
        "$argon2id$v=19$m=19456,t=2,p=1$$" TAG32,                          /* no salt */
        "$argon2id$v=19$m=19456,t=2,p=1$" SALT16 "$AAAAAAAAAAAAAAAAAAAA",  /* tag 15 bytes */
        "$argon2id$v=19$m=19456,t=2,p=1$" SALT16 "$",                      /* no tag */
        "$argon2id$v=19$m=19456,t=2,p=1$" SALT16,
        "$ARGON2ID$v=19$m=19456,t=2,p=1$" SALT16 "$" TAG32,
        " $argon2id$v=19$m=19456,t=2,p=1$" SALT16 "$" TAG32,
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cr_assert_not(stp_password_hash_valid(bad[i]), "accepted [%zu] %s", i, bad[i]);
        cr_assert_not(stp_password_verify(bad[i], "x", 1));
    }
    cr_assert_not(stp_password_hash_valid(NULL));
}

/* libargon2's own encoder at the edges of the accepted bounds: its strings
 * pass, and verify. */
Test(password, libargon2_strings_at_the_bounds_pass_and_verify)
{
    static const struct {
        uint32_t m, t, p;
        size_t salt, tag;
    } cases[] = {{8, 1, 1, 8, 16}, {32, 10, 4, 64, 16}, {8, 1, 1, 8, 64}, {16, 3, 2, 17, 33}};
    unsigned char salt[64];
    memset(salt, 0x5a, sizeof(salt));
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char enc[256];
        int rc = argon2_hash(cases[i].t, cases[i].m, cases[i].p, "pw", 2, salt, cases[i].salt, NULL,
                             cases[i].tag, enc, sizeof(enc), Argon2_id, ARGON2_VERSION_13);
        cr_assert_eq(rc, ARGON2_OK, "%s", argon2_error_message(rc));
        if (strlen(enc) >= STP_PASSWORD_HASH_MAX) {
            cr_assert_not(stp_password_hash_valid(enc), "%s", enc);
            continue;
        }
        cr_assert(stp_password_hash_valid(enc), "%s", enc);
        cr_assert(stp_password_verify(enc, "pw", 2), "%s", enc);
        cr_assert_not(stp_password_verify(enc, "pW", 2), "%s", enc);
    }
}

Test(password, valid_rejects_every_prefix_of_a_real_hash)
{
    char h[STP_PASSWORD_HASH_MAX], cut[STP_PASSWORD_HASH_MAX];
    cr_assert_eq(stp_password_hash("secret", 6, h), 0);
    size_t n = strlen(h);
    for (size_t i = 0; i < n; i++) {
        memcpy(cut, h, i);
        cut[i] = '\0';
        /* A tag cut to 22 digits or more may still be canonical base64 of 16
         * bytes or more: such a cut may pass, but it never verifies. */
        if (stp_password_hash_valid(cut)) {
            cr_assert_geq(i, n - 43 + 22, "prefix %zu accepted: %s", i, cut);
            cr_assert_not(stp_password_verify(cut, "secret", 6));
        }
    }
    /* the salt and everything before it: never */
    for (size_t i = 0; i <= strlen(PREFIX) + 22 + 1; i++) {
        memcpy(cut, h, i);
        cut[i] = '\0';
        cr_assert_not(stp_password_hash_valid(cut), "prefix %zu accepted: %s", i, cut);
    }
}

Test(password, valid_rejects_too_long)
{
    /* 64-byte salt and tag: well-formed, but longer than STP_PASSWORD_HASH_MAX */
    char s[512];
    char b86[87];
    memset(b86, 'A', 86);
    b86[86] = '\0';
    snprintf(s, sizeof(s), "$argon2id$v=19$m=8,t=1,p=1$%s$%s", b86, b86);
    cr_assert_geq(strlen(s), STP_PASSWORD_HASH_MAX);
    cr_assert_not(stp_password_hash_valid(s));
    /* and a long run of a non-string */
    char big[4096];
    memset(big, 'A', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    cr_assert_not(stp_password_hash_valid(big));
}

Test(password, verify_with_huge_memory_is_refused_at_once)
{
    const char *huge = "$argon2id$v=19$m=4194304,t=10,p=1$" SALT16 "$" TAG32; /* 4 GiB */
    double t0 = now_ms();
    for (int i = 0; i < 100; i++)
        cr_assert_not(stp_password_verify(huge, "x", 1));
    cr_assert_lt(now_ms() - t0, 50.0);
}

/* --- stampede hash-password --- */

struct run {
    int rc;
    char out[512];
    char err[512];
};

static struct run hash_password(const char *input, size_t len)
{
    struct run r = {0};
    char *in_copy = malloc(len + 1);
    cr_assert_not_null(in_copy);
    memcpy(in_copy, input, len);
    FILE *in = fmemopen(in_copy, len, "r");
    FILE *out = fmemopen(r.out, sizeof(r.out) - 1, "w");
    FILE *err = fmemopen(r.err, sizeof(r.err) - 1, "w");
    cr_assert(in && out && err);
    r.rc = stp_hash_password_main(in, out, err);
    fclose(in);
    fclose(out);
    fclose(err);
    free(in_copy);
    return r;
}

static void assert_hash_line_of(const struct run *r, const char *pw)
{
    cr_assert_eq(r->rc, 0, "%s", r->err);
    cr_assert_str_empty(r->err);
    size_t n = strlen(r->out);
    cr_assert_gt(n, 1);
    cr_assert_eq(r->out[n - 1], '\n');
    char h[STP_PASSWORD_HASH_MAX] = {0};
    cr_assert_lt(n - 1, sizeof(h));
    memcpy(h, r->out, n - 1);
    cr_assert(stp_password_hash_valid(h), "%s", h);
    cr_assert(stp_password_verify(h, pw, strlen(pw)));
}

Test(hash_password, lf)
{
    struct run r = hash_password("secret\n", 7);
    assert_hash_line_of(&r, "secret");
}

Test(hash_password, crlf)
{
    struct run r = hash_password("secret\r\n", 8);
    assert_hash_line_of(&r, "secret");
}

Test(hash_password, eof_without_newline_and_only_the_first_line)
{
    struct run r = hash_password("secret", 6);
    assert_hash_line_of(&r, "secret");
    r = hash_password("pass word\nsecond line\n", 22);
    assert_hash_line_of(&r, "pass word");
}

Test(hash_password, empty)
{
    static const char *inputs[] = {"", "\n", "\r\n"};
    for (size_t i = 0; i < 3; i++) {
        struct run r = hash_password(inputs[i], strlen(inputs[i]));
        cr_assert_eq(r.rc, 2);
        cr_assert_str_eq(r.err, "stampede: hash-password: empty password\n");
        cr_assert_str_empty(r.out);
    }
}

Test(hash_password, nul_inside)
{
    struct run r = hash_password("sec\0ret\n", 8);
    cr_assert_eq(r.rc, 2);
    cr_assert_str_eq(r.err, "stampede: hash-password: password contains a NUL byte\n");
    cr_assert_str_empty(r.out);
}

Test(hash_password, length_limit)
{
    static char line[5002];
    memset(line, 'x', 5000);
    line[5000] = '\n';
    struct run r = hash_password(line, 5001);
    cr_assert_eq(r.rc, 2);
    cr_assert_str_eq(r.err, "stampede: hash-password: password longer than 4096 bytes\n");
    cr_assert_str_empty(r.out);

    r = hash_password(line, 4097); /* 4097 x, no LF */
    cr_assert_eq(r.rc, 2);
    memcpy(line + 4097, "\r\n", 2);
    r = hash_password(line, 4099);
    cr_assert_eq(r.rc, 2);

    line[4096] = '\n'; /* exactly 4096 bytes */
    r = hash_password(line, 4097);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    memcpy(line + 4096, "\r\n", 2); /* and its CR */
    r = hash_password(line, 4098);
    cr_assert_eq(r.rc, 0, "%s", r.err);
}
