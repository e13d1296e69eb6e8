/*
 * text.c - reading the users and ACL files: the file itself (bounded, wiped
 * as it grows: it may hold hashes), its lines, base64 digits.
 */
#include "auth_internal.h"

#include "stampede/error.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void stp_auth_set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* Grow *buf to ncap bytes by copying, so the old copy can be wiped. */
static int grow(char **buf, size_t len, size_t *cap, size_t ncap)
{
    char *nb = malloc(ncap);
    if (!nb)
        return STP_ENOMEM;
    if (len)
        memcpy(nb, *buf, len);
    if (*buf) {
        explicit_bzero(*buf, *cap);
        free(*buf);
    }
    *buf = nb;
    *cap = ncap;
    return 0;
}

int stp_auth_read_file(const char *path, char **text, size_t *len, char *err, size_t errlen)
{
    *text = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        stp_auth_set_err(err, errlen, "%s: %s", path, strerror(errno));
        return STP_EIO;
    }
    /* Read to EOF (not trusting st_size, which a pipe or /proc file does
     * not have); one byte past the limit tells a file that is too large. */
    char *buf = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    for (;;) {
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 64 * 1024;
            if (ncap > STP_AUTH_MAX_FILE + 1)
                ncap = STP_AUTH_MAX_FILE + 1;
            if ((rc = grow(&buf, n, &cap, ncap)) < 0) {
                stp_auth_set_err(err, errlen, "%s: %s", path, stp_strerror(rc));
                break;
            }
        }
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            stp_auth_set_err(err, errlen, "%s: %s", path, strerror(errno));
            rc = STP_EIO;
            break;
        }
        if (r == 0)
            break;
        n += (size_t)r;
        if (n > STP_AUTH_MAX_FILE) {
            stp_auth_set_err(err, errlen, "%s: larger than %u MiB", path, STP_AUTH_MAX_FILE >> 20);
            rc = STP_EINVAL;
            break;
        }
    }
    close(fd);
    if (rc < 0) {
        stp_auth_free_text(buf, cap);
        return rc;
    }
    *text = buf;
    *len = n;
    return 0;
}

void stp_auth_free_text(char *text, size_t len)
{
    if (!text)
        return;
    explicit_bzero(text, len);
    free(text);
}

bool stp_auth_next_line(const char *text, size_t len, size_t *pos, const char **line, size_t *n)
{
    if (*pos >= len)
        return false;
    const char *s = text + *pos;
    const char *lf = memchr(s, '\n', len - *pos);
    size_t k = lf ? (size_t)(lf - s) : len - *pos;
    *pos += k + (lf ? 1 : 0);
    if (k > 0 && s[k - 1] == '\r')
        k--;
    *line = s;
    *n = k;
    return true;
}

int stp_auth_b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}
