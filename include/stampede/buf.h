/*
 * buf.h - a growable byte buffer.
 *
 * Owned by whoever embeds it; not thread-safe. `data` may move on any call
 * that grows the buffer, so keep offsets, not pointers, across such calls.
 */
#ifndef STAMPEDE_BUF_H
#define STAMPEDE_BUF_H

#include <stddef.h>

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
/* Append the decimal form of v. */
int stp_buf_append_u64(struct stp_buf *b, unsigned long long v);
/* Drop the first n bytes (n <= len), moving the rest to the front. */
void stp_buf_consume(struct stp_buf *b, size_t n);
/* Forget the contents, keep the allocation. */
void stp_buf_reset(struct stp_buf *b);
/* Release the allocation; the buffer is empty and reusable afterwards. */
void stp_buf_free(struct stp_buf *b);

#endif
