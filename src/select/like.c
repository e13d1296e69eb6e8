/*
 * like.c - LIKE patterns: compiled once into elements ('%', '_', one
 * literal character), matched without backtracking beyond the last '%'.
 *
 * Characters are UTF-8 sequences (sel_utf8_len), in the pattern and in the
 * value alike, so '_' takes one character and a literal compares whole
 * characters. Runs of '%' collapse into one element at compile time.
 *
 * Matching is the glob algorithm Russ Cox describes
 * (research.swtch.com/glob): walk pattern and value together; at a '%',
 * remember where it is and let it match nothing; on a mismatch, go back to
 * just after the last '%' and let it swallow one more character. A '%'
 * makes every earlier choice final (what comes before it is matched at the
 * leftmost place, which leaves the most room after), so one restart point
 * is enough: O(value characters x elements) at worst, never exponential.
 */
#include "select_internal.h"

#include <string.h>

/* The decoded character at raw offset i of a string token (end: the
 * closing quote): its bytes in *c, *clen, and the raw bytes it takes. */
static size_t raw_char(const char *text, size_t i, size_t end, const char **c, size_t *clen)
{
    *c = text + i;
    if (text[i] == '\'') { /* '' in the literal */
        *clen = 1;
        return 2;
    }
    *clen = sel_utf8_len(text + i, end - i);
    return *clen;
}

static struct sel_like_el literal(const char *c, size_t clen)
{
    struct sel_like_el e = {.kind = EL_LIT, .len = (uint8_t)clen};
    memcpy(e.c, c, clen);
    return e;
}

int sel_like_compile(const char *text, const struct sel_token *pat, const char *esc, size_t esclen,
                     struct sel_like_el *els, size_t *nels, size_t *errpos)
{
    size_t end = pat->pos + pat->len - 1, n = 0;
    size_t i = pat->pos + 1;
    while (i < end) {
        const char *c;
        size_t clen, at = i;
        i += raw_char(text, i, end, &c, &clen);
        if (esclen && clen == esclen && memcmp(c, esc, clen) == 0) {
            const char *d = NULL;
            size_t dlen = 0;
            if (i < end)
                i += raw_char(text, i, end, &d, &dlen);
            bool ok = dlen == 1 && (*d == '%' || *d == '_');
            ok = ok || (dlen == esclen && memcmp(d, esc, dlen) == 0);
            if (!ok) {
                *errpos = at;
                return -1;
            }
            els[n++] = literal(d, dlen);
        } else if (clen == 1 && *c == '%') {
            if (n == 0 || els[n - 1].kind != EL_ANY)
                els[n++] = (struct sel_like_el){.kind = EL_ANY};
        } else if (clen == 1 && *c == '_') {
            els[n++] = (struct sel_like_el){.kind = EL_ONE};
        } else {
            els[n++] = literal(c, clen);
        }
    }
    *nels = n;
    return 0;
}

bool sel_like_match(const struct sel_like_el *els, size_t nels, const char *s, size_t n)
{
    size_t px = 0, nx = 0;
    size_t star_px = SIZE_MAX, star_nx = 0; /* the last '%' and where its match ends */
    while (px < nels || nx < n) {
        if (px < nels) {
            const struct sel_like_el *e = &els[px];
            if (e->kind == EL_ANY) {
                if (px + 1 == nels)
                    return true; /* a final '%' takes the rest */
                star_px = px++;
                star_nx = nx;
                continue;
            }
            if (nx < n) {
                size_t l = sel_utf8_len(s + nx, n - nx);
                if (e->kind == EL_ONE || (e->len == l && memcmp(e->c, s + nx, l) == 0)) {
                    px++;
                    nx += l;
                    continue;
                }
            }
        }
        if (star_px == SIZE_MAX || star_nx >= n)
            return false;
        star_nx += sel_utf8_len(s + star_nx, n - star_nx);
        px = star_px + 1;
        nx = star_nx;
    }
    return true;
}
