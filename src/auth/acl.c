/*
 * acl.c - the ACL file: who may read (SUBSCRIBE) and write (SEND) where.
 *
 * A line is `LOGIN PERMISSION PATTERN`:
 *   - lines end at LF (a CR just before it, or just before the end of the
 *     text, is dropped); at most MAX_LINE bytes without it;
 *   - fields are separated by runs of spaces and tabs; blanks at either end
 *     are ignored; a line that is blank, or whose first non-blank byte is
 *     `#`, is skipped; any other line has exactly three fields (so a `#`
 *     later in a line is not a comment: it makes a fourth field);
 *   - LOGIN is `*` (every login, whatever it is) or one login: printable
 *     ASCII (0x21..0x7e) without ':', at most MAX_LOGIN bytes. A login
 *     that merely contains `*` (`a*b`) is that login, not a wildcard;
 *   - PERMISSION is `read`, `write` or `readwrite` (case matters);
 *   - PATTERN starts with '/', is printable ASCII, at most MAX_PATTERN bytes.
 *     `*` matches any run of bytes other than '/', including the empty run
 *     (so `/topic/` followed by `*` matches `/topic/` and `/topic/x`, not
 *     `/topic/x/y`);
 *     `**` matches any run of bytes, '/' included, also the empty one (so
 *     `/topic/` followed by `**` matches `/topic/` and `/topic/x/y`; `/a**b`
 *     matches `/ab`);
 *     a run of three or more `*` is an error; `{login}` matches exactly the
 *     connecting login's bytes (its own `*`, `/` or `{` are literal); any
 *     other `{` or `}` is an error. Every other byte matches itself, and the
 *     pattern must match the whole destination.
 * Rules only grant: a login's permissions on a destination are the union of
 * those of every rule that names it (or `*`) and matches. A file with no
 * rules is valid and grants nothing, so every destination is denied.
 *
 * A pattern is compiled into tokens (literal runs, `*`, `**`, `{login}`).
 * Matching first compares the fixed tokens before the first wildcard and
 * after the last one against the two ends of the destination (most rules
 * are decided there), then runs a DP over the positions of what is left of
 * the destination, one sweep per token (dp_match): bounded time, no
 * backtracking. The worst case is O((tokens + fixed bytes) x destination),
 * the fixed bytes counting each `{login}` as the login's length.
 *
 * stp_acl_load: an unreadable file is STP_EIO, one over 16 MiB STP_EINVAL,
 * both with "PATH: why" in err; parse errors are STP_EINVAL. The table is
 * read-only once built: any thread may call stp_acl_perms.
 */
#include "auth_internal.h"

#include "stampede/array.h"
#include "stampede/error.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_LINE 4096
#define MAX_LOGIN 256
#define MAX_PATTERN 1024
#define MAX_RULES 100000

enum tok_kind { TOK_LIT, TOK_STAR, TOK_DSTAR, TOK_LOGIN };

struct acl_tok {
    uint32_t off; /* TOK_LIT: its bytes in acl->chars */
    uint32_t len;
    uint8_t kind;
};

struct acl_rule {
    uint32_t login_off, login_len; /* in acl->chars; unused when any_login */
    uint32_t tok;                  /* first token in acl->toks */
    uint32_t ntok;
    uint32_t first_wild, last_wild; /* token indexes of the outer wildcards (ntok: none) */
    uint32_t fixed;                 /* bytes of literal tokens */
    uint32_t nlogin;                /* `{login}` tokens */
    uint8_t perms;
    bool any_login;
};

struct stp_acl {
    struct acl_rule *rules;
    size_t nrules, rules_cap;
    struct acl_tok *toks;
    size_t ntoks, toks_cap;
    char *chars;
    size_t nchars, chars_cap;
};

static bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

static bool is_print(unsigned char c)
{
    return c >= 0x21 && c <= 0x7e;
}

/* Append n bytes to acl->chars; their offset in *off. */
static int add_chars(struct stp_acl *a, const char *s, size_t n, uint32_t *off)
{
    if (STP_ARRAY_RESERVE(a->chars, a->chars_cap, a->nchars + n) != 0)
        return STP_ENOMEM;
    memcpy(a->chars + a->nchars, s, n);
    *off = (uint32_t)a->nchars;
    a->nchars += n;
    return 0;
}

static int add_tok(struct stp_acl *a, uint8_t kind, uint32_t off, uint32_t len)
{
    if (STP_ARRAY_RESERVE(a->toks, a->toks_cap, a->ntoks + 1) != 0)
        return STP_ENOMEM;
    a->toks[a->ntoks++] = (struct acl_tok){.off = off, .len = len, .kind = kind};
    return 0;
}

static const char LOGIN_PH[] = "{login}";
#define LOGIN_PH_LEN (sizeof(LOGIN_PH) - 1)

/* Check a pattern; NULL when it is valid, else what is wrong (in buf). */
static const char *check_pattern(const char *p, size_t n, char *buf, size_t buflen)
{
    if (p[0] != '/')
        return "the pattern must start with '/'";
    if (n > MAX_PATTERN) {
        snprintf(buf, buflen, "the pattern is longer than %d bytes", MAX_PATTERN);
        return buf;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (!is_print(c)) {
            snprintf(buf, buflen, "byte 0x%02x in the pattern (printable ASCII only)", c);
            return buf;
        }
        if (c == '*') {
            size_t run = 1;
            while (i + run < n && p[i + run] == '*')
                run++;
            if (run > 2)
                return "'***' in the pattern ('*' or '**' only)";
            i += run - 1;
        } else if (c == '{') {
            if (n - i >= LOGIN_PH_LEN && memcmp(p + i, LOGIN_PH, LOGIN_PH_LEN) == 0) {
                i += LOGIN_PH_LEN - 1;
                continue;
            }
            size_t j = i + 1;
            while (j < n && p[j] != '}' && p[j] != '{')
                j++;
            if (j == n || p[j] == '{')
                return "unbalanced '{' in the pattern";
            size_t shown = j - i + 1 > 64 ? 64 : j - i + 1;
            snprintf(buf, buflen, "unknown placeholder %.*s (only {login})", (int)shown, p + i);
            return buf;
        } else if (c == '}') {
            return "unbalanced '}' in the pattern";
        }
    }
    return NULL;
}

/* Compile a checked pattern into r's tokens. */
static int compile_pattern(struct stp_acl *a, struct acl_rule *r, const char *p, size_t n)
{
    r->tok = (uint32_t)a->ntoks;
    size_t i = 0;
    while (i < n) {
        int rc;
        if (p[i] == '*') {
            bool dbl = i + 1 < n && p[i + 1] == '*';
            rc = add_tok(a, dbl ? TOK_DSTAR : TOK_STAR, 0, 0);
            i += dbl ? 2 : 1;
        } else if (p[i] == '{') { /* only {login} passed check_pattern */
            rc = add_tok(a, TOK_LOGIN, 0, 0);
            r->nlogin++;
            i += LOGIN_PH_LEN;
        } else {
            size_t j = i;
            while (j < n && p[j] != '*' && p[j] != '{')
                j++;
            uint32_t off;
            rc = add_chars(a, p + i, j - i, &off);
            if (rc == 0)
                rc = add_tok(a, TOK_LIT, off, (uint32_t)(j - i));
            r->fixed += (uint32_t)(j - i);
            i = j;
        }
        if (rc != 0)
            return rc;
    }
    r->ntok = (uint32_t)(a->ntoks - r->tok);
    r->first_wild = r->last_wild = r->ntok;
    for (uint32_t t = 0; t < r->ntok; t++) {
        uint8_t k = a->toks[r->tok + t].kind;
        if (k == TOK_STAR || k == TOK_DSTAR) {
            if (r->first_wild == r->ntok)
                r->first_wild = t;
            r->last_wild = t;
        }
    }
    return 0;
}

/* Split line (no LF, no CR) into at most 4 fields; the number found. */
static int split_fields(const char *s, size_t n, const char *f[4], size_t fl[4])
{
    int nf = 0;
    size_t i = 0;
    for (;;) {
        while (i < n && is_blank(s[i]))
            i++;
        if (i == n)
            return nf;
        size_t start = i;
        while (i < n && !is_blank(s[i]))
            i++;
        if (nf == 4)
            return 5; /* more than we care to count */
        f[nf] = s + start;
        fl[nf] = i - start;
        nf++;
    }
}

/* Parse one non-blank, non-comment line into a rule. 0, STP_EINVAL with
 * *what set, or STP_ENOMEM. */
static int parse_rule(struct stp_acl *a, const char *s, size_t n, const char **what, char *buf,
                      size_t buflen)
{
    const char *f[4];
    size_t fl[4];
    int nf = split_fields(s, n, f, fl);
    if (nf != 3) {
        *what = nf > 3 ? "more than three fields (LOGIN PERMISSION PATTERN)"
                       : "fewer than three fields (LOGIN PERMISSION PATTERN)";
        return STP_EINVAL;
    }

    struct acl_rule r = {0};
    if (fl[0] == 1 && f[0][0] == '*') {
        r.any_login = true;
    } else {
        if (fl[0] > MAX_LOGIN) {
            snprintf(buf, buflen, "the login is longer than %d bytes", MAX_LOGIN);
            *what = buf;
            return STP_EINVAL;
        }
        for (size_t i = 0; i < fl[0]; i++) {
            unsigned char c = (unsigned char)f[0][i];
            if (!is_print(c) || c == ':') {
                snprintf(buf, buflen, "byte 0x%02x in the login (printable ASCII, no ':')", c);
                *what = buf;
                return STP_EINVAL;
            }
        }
    }

    if (fl[1] == 4 && memcmp(f[1], "read", 4) == 0)
        r.perms = STP_ACL_READ;
    else if (fl[1] == 5 && memcmp(f[1], "write", 5) == 0)
        r.perms = STP_ACL_WRITE;
    else if (fl[1] == 9 && memcmp(f[1], "readwrite", 9) == 0)
        r.perms = STP_ACL_READ | STP_ACL_WRITE;
    else {
        *what = "unknown permission (read, write or readwrite)";
        return STP_EINVAL;
    }

    if ((*what = check_pattern(f[2], fl[2], buf, buflen)) != NULL)
        return STP_EINVAL;

    if (a->nrules == MAX_RULES) {
        snprintf(buf, buflen, "more than %d rules", MAX_RULES);
        *what = buf;
        return STP_EINVAL;
    }
    if (STP_ARRAY_RESERVE(a->rules, a->rules_cap, a->nrules + 1) != 0)
        return STP_ENOMEM;
    if (!r.any_login) {
        if (add_chars(a, f[0], fl[0], &r.login_off) != 0)
            return STP_ENOMEM;
        r.login_len = (uint32_t)fl[0];
    }
    int rc = compile_pattern(a, &r, f[2], fl[2]);
    if (rc != 0)
        return rc;
    a->rules[a->nrules++] = r;
    return 0;
}

int stp_acl_parse(struct stp_acl **out, const char *text, size_t len, const char *name, char *err,
                  size_t errlen)
{
    *out = NULL;
    struct stp_acl *a = calloc(1, sizeof(*a));
    if (!a) {
        stp_auth_set_err(err, errlen, "%s: %s", name, stp_strerror(STP_ENOMEM));
        return STP_ENOMEM;
    }
    size_t lineno = 0, pos = 0, n;
    const char *line;
    while (stp_auth_next_line(text, len, &pos, &line, &n)) {
        lineno++;
        if (n > MAX_LINE) {
            stp_auth_set_err(err, errlen, "%s:%zu: the line is longer than %d bytes", name, lineno,
                             MAX_LINE);
            stp_acl_free(&a);
            return STP_EINVAL;
        }
        size_t i = 0;
        while (i < n && is_blank(line[i]))
            i++;
        if (i == n || line[i] == '#')
            continue;
        const char *what = NULL;
        char buf[128];
        int rc = parse_rule(a, line, n, &what, buf, sizeof(buf));
        if (rc != 0) {
            if (rc == STP_ENOMEM)
                stp_auth_set_err(err, errlen, "%s:%zu: %s", name, lineno, stp_strerror(rc));
            else
                stp_auth_set_err(err, errlen, "%s:%zu: %s", name, lineno, what);
            stp_acl_free(&a);
            return rc;
        }
    }
    stp_auth_set_err(err, errlen, "%s", "");
    *out = a;
    return 0;
}

int stp_acl_load(struct stp_acl **out, const char *path, char *err, size_t errlen)
{
    *out = NULL;
    char *text;
    size_t len;
    int rc = stp_auth_read_file(path, &text, &len, err, errlen);
    if (rc == 0)
        rc = stp_acl_parse(out, text ? text : "", len, path, err, errlen);
    stp_auth_free_text(text, len);
    return rc;
}

void stp_acl_free(struct stp_acl **a)
{
    if (!a || !*a)
        return;
    free((*a)->rules);
    free((*a)->toks);
    free((*a)->chars);
    free(*a);
    *a = NULL;
}

size_t stp_acl_count(const struct stp_acl *a)
{
    return a ? a->nrules : 0;
}

/* --- matching --- */

struct match_ctx {
    const struct stp_acl *a;
    const char *login;
    size_t llen;
};

/* The bytes a fixed token stands for. */
static void tok_bytes(const struct match_ctx *m, const struct acl_tok *t, const char **s, size_t *n)
{
    if (t->kind == TOK_LOGIN) {
        *s = m->login;
        *n = m->llen;
    } else {
        *s = m->a->chars + t->off;
        *n = t->len;
    }
}

static bool bytes_eq(const char *a, const char *b, size_t n)
{
    return n == 0 || memcmp(a, b, n) == 0;
}

/* Tokens t[0..nt) against d[0..n): a DP over the destination's positions,
 * one sweep per token. live[i] means "the tokens so far can match d[0..i)".
 * A fixed token of length L moves live[i] to live[i + L] when the bytes
 * agree (checked only at live positions); `*` spreads each live position
 * forward up to the next '/', `**` to the end. O(tokens x n) plus the byte
 * comparisons, and no backtracking. */
static bool dp_match(const struct match_ctx *m, const struct acl_tok *t, size_t nt, const char *d,
                     size_t n)
{
    unsigned char stack[2048];
    unsigned char *live = n + 1 <= sizeof(stack) ? stack : malloc(n + 1);
    if (!live)
        return false; /* no memory: no permission */
    memset(live, 0, n + 1);
    live[0] = 1;
    bool any = true;
    for (size_t k = 0; k < nt && any; k++) {
        any = false;
        if (t[k].kind == TOK_STAR || t[k].kind == TOK_DSTAR) {
            bool dstar = t[k].kind == TOK_DSTAR;
            unsigned char run = 0;
            for (size_t i = 0; i <= n; i++) {
                run |= live[i];
                live[i] = run;
                any |= run;
                if (!dstar && i < n && d[i] == '/')
                    run = 0;
            }
        } else {
            const char *s;
            size_t len;
            tok_bytes(m, &t[k], &s, &len);
            if (len == 0) { /* an empty login */
                any = true;
                continue;
            }
            /* Descending, so live[i] is read before anything writes it. */
            for (size_t i = n + 1; i-- > 0;) {
                unsigned char v = 0;
                if (i >= len && live[i - len] && memcmp(d + i - len, s, len) == 0)
                    v = 1;
                live[i] = v;
                any |= v;
            }
        }
    }
    bool matched = any && live[n];
    if (live != stack)
        free(live);
    return matched;
}

static bool rule_matches(const struct match_ctx *m, const struct acl_rule *r, const char *dest,
                         size_t dlen)
{
    /* The fixed bytes must fit. */
    if (r->nlogin && m->llen > dlen)
        return false;
    size_t need = r->fixed + (size_t)r->nlogin * m->llen;
    if (need > dlen)
        return false;
    const struct acl_tok *t = m->a->toks + r->tok;

    /* Fixed tokens before the first wildcard against the start... */
    size_t lo = 0;
    for (uint32_t k = 0; k < r->first_wild; k++) {
        const char *s;
        size_t n;
        tok_bytes(m, &t[k], &s, &n);
        if (!bytes_eq(dest + lo, s, n))
            return false;
        lo += n;
    }
    if (r->first_wild == r->ntok) /* no wildcard: the whole pattern is fixed */
        return lo == dlen;

    /* ...and those after the last one against the end. They cannot overlap
     * the prefix: need <= dlen covers both. */
    size_t hi = dlen;
    for (uint32_t k = r->ntok; k-- > r->last_wild + 1;) {
        const char *s;
        size_t n;
        tok_bytes(m, &t[k], &s, &n);
        if (!bytes_eq(dest + hi - n, s, n))
            return false;
        hi -= n;
    }

    /* The middle: only wildcards left is decided without the DP. */
    const struct acl_tok *mid = t + r->first_wild;
    size_t nmid = r->last_wild - r->first_wild + 1;
    bool only_wild = true, dstar = false;
    for (size_t k = 0; k < nmid; k++) {
        if (mid[k].kind == TOK_DSTAR)
            dstar = true;
        else if (mid[k].kind != TOK_STAR)
            only_wild = false;
    }
    if (only_wild)
        return dstar || memchr(dest + lo, '/', hi - lo) == NULL;
    return dp_match(m, mid, nmid, dest + lo, hi - lo);
}

unsigned stp_acl_perms(const struct stp_acl *a, const char *login, size_t llen, const char *dest,
                       size_t dlen)
{
    if (!a)
        return 0;
    if (!login)
        llen = 0;
    if (!dest)
        dlen = 0;
    struct match_ctx m = {.a = a, .login = login ? login : "", .llen = llen};
    unsigned perms = 0;
    for (size_t i = 0; i < a->nrules && perms != (STP_ACL_READ | STP_ACL_WRITE); i++) {
        const struct acl_rule *r = &a->rules[i];
        if ((perms | r->perms) == perms)
            continue; /* nothing new to learn from it */
        if (!r->any_login &&
            (r->login_len != llen || !bytes_eq(a->chars + r->login_off, m.login, llen)))
            continue;
        if (rule_matches(&m, r, dest ? dest : "", dlen))
            perms |= r->perms;
    }
    return perms;
}
