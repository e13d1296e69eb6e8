/*
 * fuzz_auth.c - libFuzzer target for the access-control input parsers
 * (src/auth): the users file, the ACL file and its matcher, HTTP Basic
 * credentials and argon2id PHC strings.
 *
 * Byte 0 picks the parser (its low two bits, so the seeds start with a digit):
 *   0  users file: the rest is the text for stp_users_parse;
 *   1  ACL: the rest is "TEXT \0 LOGIN \0 DEST", split at its last two NULs
 *      (with one NUL: "TEXT \0 LOGIN"; missing parts are empty):
 *      stp_acl_parse on TEXT, then stp_acl_perms for LOGIN on DEST and for
 *      destinations made from each rule's own pattern, against a reference
 *      matcher written here;
 *   2  Authorization header: byte 1 and byte 2 pick the login and password
 *      buffer sizes, the rest is the header for stp_basic_auth_parse;
 *   3  PHC string: the rest (to its first NUL) for stp_password_hash_valid.
 *
 * argon2 cost. stp_password_hash and stp_password_verify are never called.
 * stp_users_parse hashes a random password with the first user's m, t and p
 * once the whole file is accepted (the dummy hash), and a file may ask for
 * up to m = 256 MiB and t = 10: one such input takes seconds. The harness
 * therefore finds the first user's line itself (the first line that is not
 * blank or a comment: any line that fails stops the parse, so a dummy hash
 * is only ever made from that line) and passes the text to stp_users_parse
 * only when that hash is not valid (the parse fails before any hashing) or
 * asks for m * t <= MAX_ARGON2_COST KiB-passes, a few hundred microseconds.
 * Everything else in the file (more users, errors on later lines,
 * duplicates) is parsed as is. The same bound lets mode 3 run libargon2's own
 * decoder (argon2id_verify with an empty password) on valid strings, to check
 * that every hash stp_password_hash_valid accepts is one libargon2 can read.
 */
#include "auth/auth.h"
#include "auth/auth_internal.h"
#include "stampede/error.h"

#include <argon2.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ARGON2_COST 256u     /* m_kib * t */
#define MAX_LINE 4096            /* users.c's and acl.c's */
#define MAX_REF_RULES 64         /* rules the reference matcher follows */
#define MAX_REF_CELLS (1u << 18) /* pattern bytes x destination bytes, per input */

static void fail(const char *what)
{
    fprintf(stderr, "fuzz_auth: %s\n", what);
    abort();
}

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            fail(#cond);                                                                           \
    } while (0)

static bool cheap_params(const struct stp_argon2_params *p)
{
    return (uint64_t)p->m_kib * p->t <= MAX_ARGON2_COST;
}

/* --- lines, as users.c and acl.c split them --- */

struct line_iter {
    const char *text;
    size_t len, pos;
};

/* The next line (LF removed, then one CR before it or before the end); false
 * at the end. */
static bool next_line(struct line_iter *it, const char **s, size_t *n)
{
    if (it->pos >= it->len)
        return false;
    *s = it->text + it->pos;
    const char *lf = memchr(*s, '\n', it->len - it->pos);
    *n = lf ? (size_t)(lf - *s) : it->len - it->pos;
    it->pos += *n + (lf ? 1 : 0);
    if (*n > 0 && (*s)[*n - 1] == '\r')
        (*n)--;
    return true;
}

static bool blank(char c)
{
    return c == ' ' || c == '\t';
}

/* Blank, or a comment (first non-blank byte '#'). */
static bool skipped_line(const char *s, size_t n)
{
    size_t i = 0;
    while (i < n && blank(s[i]))
        i++;
    return i == n || s[i] == '#';
}

/* --- mode 0: the users file --- */

/* False when stp_users_parse could end up hashing with a costly first hash. */
static bool users_affordable(const char *text, size_t len)
{
    struct line_iter it = {text, len, 0};
    const char *s;
    size_t n;
    while (next_line(&it, &s, &n)) {
        if (n > MAX_LINE)
            return true; /* the parse stops here */
        if (skipped_line(s, n))
            continue;
        const char *colon = memchr(s, ':', n);
        if (!colon)
            return true;
        size_t hlen = n - (size_t)(colon + 1 - s);
        char h[STP_PASSWORD_HASH_MAX];
        if (hlen >= sizeof(h))
            return true;
        memcpy(h, colon + 1, hlen);
        h[hlen] = '\0';
        struct stp_argon2_params p;
        return !stp_password_hash_parse(h, &p) || cheap_params(&p);
    }
    return true; /* no user: "no users" */
}

static void fuzz_users(const char *text, size_t len)
{
    if (!users_affordable(text, len))
        return;
    struct stp_users *u = (struct stp_users *)1;
    char err[256] = "";
    int rc = stp_users_parse(&u, text, len, "users", err, sizeof(err));
    if (rc != 0) {
        CHECK(rc < 0 && u == NULL);
        CHECK(strncmp(err, "users:", 6) == 0);
        return;
    }
    CHECK(u != NULL);
    /* Every user line is there with its hash, in a file that parsed. */
    struct line_iter it = {text, len, 0};
    const char *s;
    size_t n, users = 0;
    struct stp_argon2_params first = {0};
    while (next_line(&it, &s, &n)) {
        if (skipped_line(s, n))
            continue;
        const char *colon = memchr(s, ':', n);
        CHECK(colon != NULL && colon > s);
        size_t llen = (size_t)(colon - s), hlen = n - llen - 1;
        const char *h = stp_users_hash(u, s, llen);
        CHECK(h != NULL && strlen(h) == hlen && memcmp(h, colon + 1, hlen) == 0);
        struct stp_argon2_params p;
        CHECK(stp_password_hash_parse(h, &p));
        if (users++ == 0)
            first = p;
    }
    CHECK(users > 0 && stp_users_count(u) == users);
    /* The dummy hash is valid, with the first user's parameters. */
    struct stp_argon2_params dp;
    CHECK(stp_password_hash_parse(stp_users_dummy_hash(u), &dp));
    CHECK(dp.m_kib == first.m_kib && dp.t == first.t && dp.p == first.p);
    /* Logins that no file can hold. */
    CHECK(stp_users_hash(u, "", 0) == NULL);
    CHECK(stp_users_hash(u, "a b", 3) == NULL);
    CHECK(stp_users_hash(u, "a:b", 3) == NULL);
    stp_users_free(&u);
    CHECK(u == NULL);
}

/* --- mode 1: the ACL --- */

struct ref_rule {
    const char *login, *pattern; /* login NULL: `*` */
    size_t llen, plen;
    unsigned perms;
};

/* Pattern items after expanding {login}: a byte, or one of these. */
enum { ITEM_STAR = -1, ITEM_DSTAR = -2 };

/* What is left of MAX_REF_CELLS for this input. */
static uint64_t ref_budget;

/* The reference: the pattern expanded into items, then the textbook glob DP
 * over (items x destination). -1 when it would take more than what is left
 * of the input's budget. Not instrumented for coverage: its branches are the
 * harness's, not the code under test's, and it is most of the harness's time. */
__attribute__((no_sanitize("coverage"))) static int
ref_match(const struct ref_rule *r, const char *login, size_t llen, const char *d, size_t dn)
{
    size_t nitems = 0;
    for (size_t i = 0; i < r->plen;) {
        if (r->plen - i >= 7 && memcmp(r->pattern + i, "{login}", 7) == 0)
            nitems += llen, i += 7;
        else if (r->pattern[i] == '*' && i + 1 < r->plen && r->pattern[i + 1] == '*')
            nitems++, i += 2;
        else
            nitems++, i++;
    }
    uint64_t cells = (uint64_t)(nitems + 1) * (dn + 1);
    if (cells > ref_budget)
        return -1;
    ref_budget -= cells;
    int *items = malloc((nitems + 1) * sizeof(*items));
    unsigned char *prev = calloc(dn + 1, 1), *cur = calloc(dn + 1, 1);
    CHECK(items && prev && cur);
    size_t k = 0;
    for (size_t i = 0; i < r->plen;) {
        if (r->plen - i >= 7 && memcmp(r->pattern + i, "{login}", 7) == 0) {
            for (size_t j = 0; j < llen; j++)
                items[k++] = (unsigned char)login[j];
            i += 7;
        } else if (r->pattern[i] == '*' && i + 1 < r->plen && r->pattern[i + 1] == '*') {
            items[k++] = ITEM_DSTAR, i += 2;
        } else if (r->pattern[i] == '*') {
            items[k++] = ITEM_STAR, i++;
        } else {
            items[k++] = (unsigned char)r->pattern[i++];
        }
    }
    prev[0] = 1;
    const unsigned char *du = (const unsigned char *)d;
    for (size_t i = 0; i < nitems; i++) {
        int it = items[i];
        cur[0] = it < 0 && prev[0];
        if (it == ITEM_DSTAR) {
            for (size_t j = 1; j <= dn; j++)
                cur[j] = prev[j] | cur[j - 1];
        } else if (it == ITEM_STAR) {
            for (size_t j = 1; j <= dn; j++)
                cur[j] = prev[j] | (cur[j - 1] & (du[j - 1] != '/'));
        } else {
            for (size_t j = 1; j <= dn; j++)
                cur[j] = prev[j - 1] & (du[j - 1] == it);
        }
        unsigned char *t = prev;
        prev = cur, cur = t;
    }
    int m = prev[dn];
    free(items), free(prev), free(cur);
    return m;
}

/* stp_acl_perms against the reference for one login and destination. */
static unsigned check_perms(const struct stp_acl *a, const struct ref_rule *rules, size_t nrules,
                            bool all_rules, const char *login, size_t llen, const char *d,
                            size_t dn)
{
    unsigned got = stp_acl_perms(a, login, llen, d, dn);
    CHECK((got & ~(unsigned)(STP_ACL_READ | STP_ACL_WRITE)) == 0);
    CHECK(stp_acl_perms(a, login, llen, d, dn) == got);
    unsigned want = 0;
    bool exact = all_rules;
    for (size_t i = 0; i < nrules; i++) {
        const struct ref_rule *r = &rules[i];
        if (r->login && (r->llen != llen || memcmp(r->login, login, llen) != 0))
            continue;
        int m = ref_match(r, login, llen, d, dn);
        if (m < 0)
            exact = false;
        else if (m)
            want |= r->perms;
    }
    CHECK((want & ~got) == 0); /* everything the reference grants */
    if (exact)
        CHECK(got == want); /* and nothing more */
    return got;
}

/* Pattern with {login} -> login, `**` -> dstar, `*` -> star. */
static size_t instantiate(const struct ref_rule *r, const char *login, size_t llen,
                          const char *star, const char *dstar, char *out)
{
    size_t k = 0, sl = strlen(star), dl = strlen(dstar);
    for (size_t i = 0; i < r->plen;) {
        if (r->plen - i >= 7 && memcmp(r->pattern + i, "{login}", 7) == 0) {
            memcpy(out + k, login, llen), k += llen, i += 7;
        } else if (r->pattern[i] == '*' && i + 1 < r->plen && r->pattern[i + 1] == '*') {
            memcpy(out + k, dstar, dl), k += dl, i += 2;
        } else if (r->pattern[i] == '*') {
            memcpy(out + k, star, sl), k += sl, i++;
        } else {
            out[k++] = r->pattern[i++];
        }
    }
    return k;
}

static void fuzz_acl(const char *data, size_t size)
{
    /* Split at the last two NULs, so that the text may hold NULs (logins
     * and destinations never do: STOMP headers cannot carry one). */
    const char *text = data, *login = "", *dest = "";
    size_t tlen = size, llen = 0, dlen = 0;
    const char *z2 = memrchr(data, '\0', size);
    if (z2) {
        const char *z1 = memrchr(data, '\0', (size_t)(z2 - data));
        if (z1) {
            login = z1 + 1;
            llen = (size_t)(z2 - login);
            dest = z2 + 1;
            dlen = (size_t)(data + size - dest);
            tlen = (size_t)(z1 - data);
        } else {
            login = z2 + 1;
            llen = (size_t)(data + size - login);
            tlen = (size_t)(z2 - data);
        }
    }
    struct stp_acl *a = (struct stp_acl *)1;
    char err[256] = "x";
    int rc = stp_acl_parse(&a, text, tlen, "acl", err, sizeof(err));
    if (rc != 0) {
        CHECK(rc < 0 && a == NULL);
        CHECK(strncmp(err, "acl:", 4) == 0);
        CHECK(stp_acl_perms(NULL, login, llen, dest, dlen) == 0);
        return;
    }
    CHECK(a != NULL && err[0] == '\0');
    ref_budget = MAX_REF_CELLS;

    /* The rules, read again here: every line that is not skipped has three
     * fields, since the text parsed. */
    struct ref_rule rules[MAX_REF_RULES];
    size_t nrules = 0, lines = 0;
    struct line_iter it = {text, tlen, 0};
    const char *s;
    size_t n;
    while (next_line(&it, &s, &n)) {
        if (skipped_line(s, n))
            continue;
        lines++;
        const char *f[3];
        size_t fl[3], i = 0;
        for (int k = 0; k < 3; k++) {
            while (i < n && blank(s[i]))
                i++;
            f[k] = s + i;
            while (i < n && !blank(s[i]))
                i++;
            fl[k] = (size_t)(s + i - f[k]);
            CHECK(fl[k] > 0);
        }
        if (nrules == MAX_REF_RULES)
            continue;
        struct ref_rule *r = &rules[nrules++];
        r->login = fl[0] == 1 && f[0][0] == '*' ? NULL : f[0];
        r->llen = r->login ? fl[0] : 0;
        r->pattern = f[2], r->plen = fl[2];
        r->perms = fl[1] == 4 ? STP_ACL_READ : fl[1] == 5 ? STP_ACL_WRITE : 3;
    }
    CHECK(stp_acl_count(a) == lines);
    bool all = nrules == lines;

    check_perms(a, rules, nrules, all, login, llen, dest, dlen);

    /* Each rule grants its permissions on destinations made from its own
     * pattern, for its login (or the input's login for `*`). */
    for (size_t i = 0; i < nrules && i < 16; i++) {
        const struct ref_rule *r = &rules[i];
        const char *who = r->login ? r->login : login;
        size_t wl = r->login ? r->llen : llen;
        static const char *fills[][2] = {{"", ""}, {"x", "/y/"}, {"a.b", "c"}};
        for (size_t v = 0; v < sizeof(fills) / sizeof(fills[0]); v++) {
            size_t nlogins = r->plen / 7 + 1;
            char *d = malloc(r->plen * 3 + nlogins * wl + 1);
            CHECK(d != NULL);
            size_t dn = instantiate(r, who, wl, fills[v][0], fills[v][1], d);
            unsigned got = check_perms(a, rules, nrules, all, who, wl, d, dn);
            CHECK((got & r->perms) == r->perms);
            free(d);
        }
    }
    stp_acl_free(&a);
    CHECK(a == NULL);
}

/* --- mode 2: Authorization: Basic --- */

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Unpadded base64 of p[0..n) into out; its length. */
static size_t b64_encode(const unsigned char *p, size_t n, char *out)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < n)
            v |= p[i + 2];
        out[k++] = B64[v >> 18 & 63];
        out[k++] = B64[v >> 12 & 63];
        if (i + 1 < n)
            out[k++] = B64[v >> 6 & 63];
        if (i + 2 < n)
            out[k++] = B64[v & 63];
    }
    return k;
}

static size_t basic_cap(uint8_t b)
{
    return b < 0xc0 ? b % 48 : STP_BASIC_MAX + 1;
}

static void check_text(const char *s, size_t cap)
{
    const char *nul = memchr(s, '\0', cap);
    CHECK(nul != NULL);
    for (const char *c = s; c < nul; c++)
        CHECK((unsigned char)*c >= 0x20 && (unsigned char)*c != 0x7f);
}

static void fuzz_basic(const uint8_t *data, size_t size)
{
    if (size < 2)
        return;
    size_t lcap = basic_cap(data[0]), pcap = basic_cap(data[1]);
    data += 2, size -= 2;
    /* Exact sizes, so ASan sees a byte past any of them. */
    char *hdr = malloc(size ? size : 1), *login = malloc(lcap ? lcap : 1),
         *pass = malloc(pcap ? pcap : 1);
    CHECK(hdr && login && pass);
    if (size)
        memcpy(hdr, data, size);
    int rc = stp_basic_auth_parse(hdr, size, login, lcap, pass, pcap);
    if (rc == 0) {
        check_text(login, lcap);
        check_text(pass, pcap);
        size_t ll = strlen(login), pl = strlen(pass);
        CHECK(ll > 0 && memchr(login, ':', ll) == NULL);
        CHECK(ll + 1 + pl <= STP_BASIC_MAX);
        /* The header's base64 is the canonical encoding of LOGIN:PASSWORD. */
        unsigned char plain[STP_BASIC_MAX];
        memcpy(plain, login, ll);
        plain[ll] = ':';
        memcpy(plain + ll + 1, pass, pl);
        char enc[STP_BASIC_MAX * 2 + 8];
        size_t en = b64_encode(plain, ll + 1 + pl, enc);
        size_t b = 0, e = size;
        while (b < e && blank(hdr[b]))
            b++;
        while (e > b && blank(hdr[e - 1]))
            e--;
        b += 5; /* "Basic" */
        while (b < e && blank(hdr[b]))
            b++;
        while (e > b && hdr[e - 1] == '=')
            e--;
        CHECK(e - b == en && memcmp(hdr + b, enc, en) == 0);
        /* And parses back to the same two strings. */
        char h2[STP_BASIC_MAX * 2 + 16], l2[STP_BASIC_MAX + 1], p2[STP_BASIC_MAX + 1];
        memcpy(h2, "basic\t", 6);
        memcpy(h2 + 6, enc, en);
        CHECK(stp_basic_auth_parse(h2, 6 + en, l2, sizeof(l2), p2, sizeof(p2)) == 0);
        CHECK(strcmp(l2, login) == 0 && strcmp(p2, pass) == 0);
    } else {
        CHECK(rc == STP_EINVAL);
    }
    free(hdr), free(login), free(pass);
}

/* --- mode 3: PHC strings --- */

static void fuzz_phc(const char *data, size_t size)
{
    char *s = malloc(size + 1);
    CHECK(s != NULL);
    memcpy(s, data, size);
    s[size] = '\0';
    struct stp_argon2_params p = {0};
    bool valid = stp_password_hash_valid(s);
    CHECK(stp_password_hash_parse(s, &p) == valid);
    if (valid) {
        size_t n = strlen(s);
        CHECK(n < STP_PASSWORD_HASH_MAX);
        CHECK(p.p >= 1 && p.p <= 4 && p.t >= 1 && p.t <= 10);
        CHECK(p.m_kib >= 8 * p.p && p.m_kib <= 262144);
        /* The parameters are written canonically: the string starts with
         * what they print as. */
        char head[80];
        int hn = snprintf(head, sizeof(head), "$argon2id$v=19$m=%u,t=%u,p=%u$", p.m_kib, p.t, p.p);
        CHECK(hn > 0 && (size_t)hn < n && memcmp(s, head, (size_t)hn) == 0);
        /* libargon2 reads it: a mismatch, not a decoding error. */
        if (cheap_params(&p)) {
            int rc = argon2id_verify(s, "", 0);
            if (rc != ARGON2_OK && rc != ARGON2_VERIFY_MISMATCH) {
                fprintf(stderr, "fuzz_auth: libargon2 refuses \"%s\": %s\n", s,
                        argon2_error_message(rc));
                abort();
            }
        }
    }
    free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    unsigned mode = data[0] & 3;
    data++, size--;
    /* The rest in its own allocation of its exact size, so that ASan sees a
     * read past it. */
    char *buf = malloc(size ? size : 1);
    if (!buf)
        return 0;
    if (size)
        memcpy(buf, data, size);
    switch (mode) {
    case 0:
        fuzz_users(buf, size);
        break;
    case 1:
        fuzz_acl(buf, size);
        break;
    case 2:
        fuzz_basic((const uint8_t *)buf, size);
        break;
    default:
        fuzz_phc(buf, size);
        break;
    }
    free(buf);
    return 0;
}
