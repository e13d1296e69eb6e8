/*
 * buf.h - a growable byte buffer.
 *
 * Owned by whoever embeds it; not thread-safe. `data` may move on any call
 * that grows the buffer, so keep offsets, not pointers, across such calls.
 */
#ifndef STAMPEDE_BUF_H
#define STAMPEDE_BUF_H

#include <stddef.h>
#include <stdint.h>

struct stp_buf {
    char *data;
    size_t len; /* bytes in use */
    size_t cap; /* bytes allocated */
};

#define STP_BUF_INIT                                                                               \
    {                                                                                              \
        NULL, 0, 0                                                                                 \
    }

/* Make room for `extra` more bytes after len. 0 or STP_ENOMEM. */
int stp_buf_reserve(struct stp_buf *b, size_t extra);
/* Append bytes. 0 or STP_ENOMEM. */
int stp_buf_append(struct stp_buf *b, const void *p, size_t n);
int stp_buf_append_str(struct stp_buf *b, const char *s);
/* Write the decimal form of v at dst (room for STP_U64_DIGITS bytes, no NUL
 * written) and return its length: the one integer formatter of the project
 * (inline: it is on the delivery path). */
#define STP_U64_DIGITS 20
static inline size_t stp_fmt_u64(char *dst, uint64_t v)
{
    char tmp[STP_U64_DIGITS];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        dst[i] = tmp[n - 1 - i];
    return n;
}
/* Append the decimal form of v. */
int stp_buf_append_u64(struct stp_buf *b, unsigned long long v);
/* Drop the first n bytes (n <= len), moving the rest to the front. */
void stp_buf_consume(struct stp_buf *b, size_t n);
/* Forget the contents, keep the allocation. */
void stp_buf_reset(struct stp_buf *b);
/* Release the allocation; the buffer is empty and reusable afterwards. */
void stp_buf_free(struct stp_buf *b);

#endif
