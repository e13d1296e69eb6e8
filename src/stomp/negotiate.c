/*
 * negotiate.c - protocol version and heart-beat negotiation (server side).
 *
 * Pure functions, callable from any thread. accept-version is a comma list in
 * any order; spaces and tabs around items are ignored, unknown items too.
 * heart-beat is "cx,cy"; spaces and tabs around each number are tolerated.
 */
#include "stampede/stomp.h"

#include "stampede/error.h"

#include <string.h>

static bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

/* Trim blanks from both ends of s[0..n). */
static struct stp_slice trim(const char *s, size_t n)
{
    while (n > 0 && is_blank(s[0])) {
        s++;
        n--;
    }
    while (n > 0 && is_blank(s[n - 1]))
        n--;
    return (struct stp_slice){s, n};
}

static enum stp_version version_of(struct stp_slice t)
{
    if (stp_slice_eq(t, "1.0"))
        return STP_V10;
    if (stp_slice_eq(t, "1.1"))
        return STP_V11;
    if (stp_slice_eq(t, "1.2"))
        return STP_V12;
    return STP_V_NONE;
}

enum stp_version stp_negotiate_version(const struct stp_slice *accept_version)
{
    if (!accept_version)
        return STP_V10;
    enum stp_version best = STP_V_NONE;
    const char *s = accept_version->p;
    size_t left = accept_version->len;
    while (left > 0) {
        const char *comma = memchr(s, ',', left);
        size_t n = comma ? (size_t)(comma - s) : left;
        enum stp_version v = version_of(trim(s, n));
        if (v > best)
            best = v;
        if (!comma)
            break;
        s += n + 1;
        left -= n + 1;
    }
    return best;
}

const char *stp_version_str(enum stp_version v)
{
    switch (v) {
    case STP_V10:
        return "1.0";
    case STP_V11:
        return "1.1";
    case STP_V12:
        return "1.2";
    default:
        return "";
    }
}

int stp_heartbeat_parse(const struct stp_slice *hb, uint64_t *cx, uint64_t *cy)
{
    if (!hb) {
        *cx = *cy = 0;
        return 0;
    }
    const char *comma = hb->len ? memchr(hb->p, ',', hb->len) : NULL;
    if (!comma)
        return STP_EINVAL;
    size_t n = (size_t)(comma - hb->p);
    uint64_t x, y;
    if (stp_parse_u64(trim(hb->p, n), &x) || stp_parse_u64(trim(comma + 1, hb->len - n - 1), &y))
        return STP_EINVAL;
    *cx = x;
    *cy = y;
    return 0;
}

static uint64_t clamp(uint64_t t, uint64_t min_ms, uint64_t max_ms)
{
    if (t == 0)
        return 0;
    if (t < min_ms)
        t = min_ms;
    return t > max_ms ? max_ms : t;
}

void stp_heartbeat_negotiate(uint64_t cx, uint64_t cy, uint64_t min_ms, uint64_t max_ms,
                             uint64_t *sx, uint64_t *sy)
{
    *sx = clamp(cy, min_ms, max_ms);
    *sy = clamp(cx, min_ms, max_ms);
}
